package nn

import (
	"fmt"
	"runtime"
	"sync"

	"gonum.org/v1/gonum/blas"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/vigil-video/vigil/internal/openblas"
)

var sgemm = openblas.Implementation{}

// convGeom is a square-kernel 2D convolution's geometry.
type convGeom struct {
	n, cin, h, w    int // input
	cout, k, s, p   int // kernel, stride, padding
	ho, wo          int // output
	colRows, colLen int // cin*k*k, ho*wo
}

func (g convGeom) direct() bool { return g.k == 1 && g.s == 1 && g.p == 0 }

// Conv2D convolves x [N, Cin, H, W] with w [Cout, Cin, K, K] at stride s
// with p pixels of zero padding, and adds b [Cout].
func Conv2D(x, w, b *G.Node, s, p int) (*G.Node, error) {
	xs, ws := x.Shape(), w.Shape()
	if xs.Dims() != 4 || ws.Dims() != 4 || ws[1] != xs[1] || ws[2] != ws[3] || b.Shape().TotalSize() != ws[0] {
		return nil, fmt.Errorf("conv2d: input %v, weights %v, bias %v do not fit", xs, ws, b.Shape())
	}
	if s < 1 || p < 0 {
		return nil, fmt.Errorf("conv2d: stride %d, padding %d", s, p)
	}
	g := convGeom{n: xs[0], cin: xs[1], h: xs[2], w: xs[3], cout: ws[0], k: ws[2], s: s, p: p}
	g.ho = (g.h+2*p-g.k)/s + 1
	g.wo = (g.w+2*p-g.k)/s + 1
	if g.ho < 1 || g.wo < 1 {
		return nil, fmt.Errorf("conv2d: input %v too small for kernel %d", xs, g.k)
	}
	g.colRows, g.colLen = g.cin*g.k*g.k, g.ho*g.wo
	out := tensor.Shape{g.n, g.cout, g.ho, g.wo}
	o := newOp(fmt.Sprintf("conv%dx%d/%d(%d->%d)", g.k, g.k, s, g.cin, g.cout),
		[]tensor.Shape{xs.Clone(), ws.Clone(), b.Shape().Clone()}, out, g.forward(),
		[]bool{true, true, true},
		func(in G.Nodes, _, grad *G.Node) (G.Nodes, error) {
			dx, err := apply(newOp("conv-dx", []tensor.Shape{out, ws.Clone()}, xs.Clone(), g.backData(), nil, nil), grad, in[1])
			if err != nil {
				return nil, err
			}
			dw, err := apply(newOp("conv-dw", []tensor.Shape{out, xs.Clone()}, ws.Clone(), g.backFilter(), nil, nil), grad, in[0])
			if err != nil {
				return nil, err
			}
			db, err := apply(newOp("conv-db", []tensor.Shape{out}, b.Shape().Clone(), g.backBias(), nil, nil), grad)
			if err != nil {
				return nil, err
			}
			return G.Nodes{dx, dw, db}, nil
		})
	return apply(o, x, w, b)
}

// im2col lays out image im [cin, h, w] as col [cin*k*k, ho*wo].
func (g convGeom) im2col(im, col []float32) {
	for c := range g.cin {
		plane := im[c*g.h*g.w : (c+1)*g.h*g.w]
		for ky := range g.k {
			for kx := range g.k {
				row := col[((c*g.k+ky)*g.k+kx)*g.colLen:][:g.colLen]
				for oy := range g.ho {
					dst := row[oy*g.wo : (oy+1)*g.wo]
					iy := oy*g.s - g.p + ky
					if iy < 0 || iy >= g.h {
						clear(dst)
						continue
					}
					src := plane[iy*g.w : (iy+1)*g.w]
					for ox := range dst {
						ix := ox*g.s - g.p + kx
						if ix < 0 || ix >= g.w {
							dst[ox] = 0
						} else {
							dst[ox] = src[ix]
						}
					}
				}
			}
		}
	}
}

// col2im adds col [cin*k*k, ho*wo] back onto image im [cin, h, w].
func (g convGeom) col2im(col, im []float32) {
	clear(im)
	for c := range g.cin {
		plane := im[c*g.h*g.w : (c+1)*g.h*g.w]
		for ky := range g.k {
			for kx := range g.k {
				row := col[((c*g.k+ky)*g.k+kx)*g.colLen:][:g.colLen]
				for oy := range g.ho {
					iy := oy*g.s - g.p + ky
					if iy < 0 || iy >= g.h {
						continue
					}
					src := row[oy*g.wo : (oy+1)*g.wo]
					dst := plane[iy*g.w : (iy+1)*g.w]
					for ox, v := range src {
						if ix := ox*g.s - g.p + kx; ix >= 0 && ix < g.w {
							dst[ix] += v
						}
					}
				}
			}
		}
	}
}

// parallel runs f(i, worker) for i in [0, n) on up to GOMAXPROCS workers,
// worker w taking i = w, w+workers, ...: a fixed assignment, so sums that
// workers accumulate separately come out the same on every run.
func parallel(n int, f func(i, worker int)) int {
	workers := min(runtime.GOMAXPROCS(0), n)
	if workers <= 1 {
		for i := range n {
			f(i, 0)
		}
		return 1
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				f(i, w)
			}
		}()
	}
	wg.Wait()
	return workers
}

// scratch gives each worker a reusable buffer.
type scratch struct{ bufs [][]float32 }

func (s *scratch) get(worker, n int) []float32 {
	for len(s.bufs) <= worker {
		s.bufs = append(s.bufs, nil)
	}
	if cap(s.bufs[worker]) < n {
		s.bufs[worker] = make([]float32, n)
	}
	return s.bufs[worker][:n]
}

func (g convGeom) forward() kernel {
	var cols scratch
	return func(out []float32, ins [][]float32) {
		x, w, b := ins[0], ins[1], ins[2]
		cols.get(runtime.GOMAXPROCS(0), 0) // grow before the workers index it
		parallel(g.n, func(i, worker int) {
			im := x[i*g.cin*g.h*g.w : (i+1)*g.cin*g.h*g.w]
			col := im
			if !g.direct() {
				col = cols.get(worker, g.colRows*g.colLen)
				g.im2col(im, col)
			}
			y := out[i*g.cout*g.colLen : (i+1)*g.cout*g.colLen]
			for c := range g.cout {
				row := y[c*g.colLen : (c+1)*g.colLen]
				for j := range row {
					row[j] = b[c]
				}
			}
			sgemm.Sgemm(blas.NoTrans, blas.NoTrans, g.cout, g.colLen, g.colRows, 1, w, g.colRows, col, g.colLen, 1, y, g.colLen)
		})
	}
}

// backData computes dx from dy [N, Cout, Ho, Wo] and w: col2im(wᵀ · dy).
func (g convGeom) backData() kernel {
	var cols scratch
	return func(dx []float32, ins [][]float32) {
		dy, w := ins[0], ins[1]
		cols.get(runtime.GOMAXPROCS(0), 0)
		parallel(g.n, func(i, worker int) {
			d := dy[i*g.cout*g.colLen : (i+1)*g.cout*g.colLen]
			out := dx[i*g.cin*g.h*g.w : (i+1)*g.cin*g.h*g.w]
			if g.direct() {
				sgemm.Sgemm(blas.Trans, blas.NoTrans, g.colRows, g.colLen, g.cout, 1, w, g.colRows, d, g.colLen, 0, out, g.colLen)
				return
			}
			col := cols.get(worker, g.colRows*g.colLen)
			sgemm.Sgemm(blas.Trans, blas.NoTrans, g.colRows, g.colLen, g.cout, 1, w, g.colRows, d, g.colLen, 0, col, g.colLen)
			g.col2im(col, out)
		})
	}
}

// backFilter computes dw = Σ_n dy[n] · col(x[n])ᵀ.
func (g convGeom) backFilter() kernel {
	var cols, parts scratch
	return func(dw []float32, ins [][]float32) {
		dy, x := ins[0], ins[1]
		workers := min(runtime.GOMAXPROCS(0), g.n)
		cols.get(workers, 0)
		parts.get(workers, 0)
		for w := range workers {
			clear(parts.get(w, len(dw)))
		}
		parallel(g.n, func(i, worker int) {
			d := dy[i*g.cout*g.colLen : (i+1)*g.cout*g.colLen]
			im := x[i*g.cin*g.h*g.w : (i+1)*g.cin*g.h*g.w]
			col := im
			if !g.direct() {
				col = cols.get(worker, g.colRows*g.colLen)
				g.im2col(im, col)
			}
			sgemm.Sgemm(blas.NoTrans, blas.Trans, g.cout, g.colRows, g.colLen, 1, d, g.colLen, col, g.colLen, 1, parts.get(worker, len(dw)), g.colRows)
		})
		copy(dw, parts.get(0, len(dw)))
		for w := 1; w < workers; w++ {
			for j, v := range parts.get(w, len(dw)) {
				dw[j] += v
			}
		}
	}
}

// backBias sums dy over the batch and the picture.
func (g convGeom) backBias() kernel {
	return func(db []float32, ins [][]float32) {
		dy := ins[0]
		clear(db)
		for i := range g.n {
			for c := range g.cout {
				var s float32
				for _, v := range dy[(i*g.cout+c)*g.colLen:][:g.colLen] {
					s += v
				}
				db[c] += s
			}
		}
	}
}
