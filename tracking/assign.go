package tracking

import (
	"fmt"
	"math"
)

// gateEpsilon is added to the gate so that gated pairs cost slightly more
// than any admissible one, as in Deep SORT's min_cost_matching.
const gateEpsilon = 1e-5

// Match is one assigned (row, column) pair of a cost matrix.
type Match struct {
	Row, Col int
}

// Assigner solves rectangular linear assignment problems with gating. It
// uses the shortest augmenting path algorithm of Jonker and Volgenant as
// described by Crouse (the method of scipy's linear_sum_assignment), which
// is optimal and O(n^3). An Assigner reuses its scratch buffers, so after
// the first call of a given size Solve does not allocate. The zero value is
// ready to use; an Assigner is not safe for concurrent use.
type Assigner struct {
	cost      []float64
	u, v      []float64
	spc       []float64
	path      []int
	col4row   []int
	row4col   []int
	sr, sc    []bool
	remaining []int

	rows, cols int
	rowMatched []bool
	colMatched []bool
	transposed bool
}

// Solve assigns rows to columns of the row-major rows x cols matrix cost so
// that the total cost is minimal, following Deep SORT's min_cost_matching:
// costs above maxCost, and non-finite costs, are replaced by
// maxCost + 1e-5 before solving, and pairs whose cost exceeds maxCost are
// dropped afterwards. The matches are appended to dst in increasing row
// order. Use [Assigner.Unmatched] for the rows and columns left over.
func (a *Assigner) Solve(dst []Match, cost []float64, rows, cols int, maxCost float64) ([]Match, error) {
	a.rows, a.cols = 0, 0
	if rows < 0 || cols < 0 {
		return dst, fmt.Errorf("assigning %dx%d cost matrix: negative size", rows, cols)
	}
	if len(cost) < rows*cols {
		return dst, fmt.Errorf("assigning %dx%d cost matrix: have %d costs", rows, cols, len(cost))
	}
	if math.IsNaN(maxCost) || math.IsInf(maxCost, 0) {
		return dst, fmt.Errorf("assigning %dx%d cost matrix: gate %v is not finite", rows, cols, maxCost)
	}
	a.rows, a.cols = rows, cols
	a.rowMatched = resizeBool(a.rowMatched, rows)
	a.colMatched = resizeBool(a.colMatched, cols)
	if rows == 0 || cols == 0 {
		return dst, nil
	}

	// Work on nr <= nc, transposing into the scratch copy if needed.
	nr, nc := rows, cols
	a.transposed = rows > cols
	if a.transposed {
		nr, nc = cols, rows
	}
	gated := maxCost + gateEpsilon
	a.cost = resizeF(a.cost, nr*nc)
	for r := 0; r < rows; r++ {
		for c := 0; c < cols; c++ {
			x := cost[r*cols+c]
			if !(x <= maxCost) || math.IsInf(x, -1) {
				// NaN, +Inf and -Inf are gated like too-expensive pairs.
				x = gated
			}
			if a.transposed {
				a.cost[c*nc+r] = x
			} else {
				a.cost[r*nc+c] = x
			}
		}
	}
	a.solve(nr, nc)

	for i := 0; i < nr; i++ {
		j := a.col4row[i]
		r, c := i, j
		if a.transposed {
			r, c = j, i
		}
		if cost[r*cols+c] <= maxCost && !math.IsInf(cost[r*cols+c], -1) {
			a.rowMatched[r] = true
			a.colMatched[c] = true
		}
	}
	for r := 0; r < rows; r++ {
		if !a.rowMatched[r] {
			continue
		}
		// Find the column of row r.
		var c int
		if a.transposed {
			c = a.row4col[r]
		} else {
			c = a.col4row[r]
		}
		dst = append(dst, Match{Row: r, Col: c})
	}
	return dst, nil
}

// Unmatched appends to rows and cols the rows and columns of the last
// Solve that were not matched, in increasing order.
func (a *Assigner) Unmatched(rows, cols []int) ([]int, []int) {
	for r := 0; r < a.rows; r++ {
		if !a.rowMatched[r] {
			rows = append(rows, r)
		}
	}
	for c := 0; c < a.cols; c++ {
		if !a.colMatched[c] {
			cols = append(cols, c)
		}
	}
	return rows, cols
}

// solve runs the shortest augmenting path algorithm on a.cost (nr x nc,
// nr <= nc, all finite), filling a.col4row and a.row4col.
func (a *Assigner) solve(nr, nc int) {
	a.u = resizeF(a.u, nr)
	a.v = resizeF(a.v, nc)
	a.spc = resizeF(a.spc, nc)
	a.path = resizeInt(a.path, nc, -1)
	a.col4row = resizeInt(a.col4row, nr, -1)
	a.row4col = resizeInt(a.row4col, nc, -1)
	a.sr = resizeBool(a.sr, nr)
	a.sc = resizeBool(a.sc, nc)
	a.remaining = resizeInt(a.remaining, nc, 0)

	for cur := 0; cur < nr; cur++ {
		sink, minVal := a.augmentingPath(nr, nc, cur)
		if sink < 0 {
			// Cannot happen with finite costs; leave the row unassigned.
			continue
		}
		a.u[cur] += minVal
		for i := 0; i < nr; i++ {
			if a.sr[i] && i != cur {
				a.u[i] += minVal - a.spc[a.col4row[i]]
			}
		}
		for j := 0; j < nc; j++ {
			if a.sc[j] {
				a.v[j] -= minVal - a.spc[j]
			}
		}
		for j := sink; ; {
			i := a.path[j]
			a.row4col[j] = i
			a.col4row[i], j = j, a.col4row[i]
			if i == cur {
				break
			}
		}
	}
}

// augmentingPath finds the shortest augmenting path from row i (Dijkstra on
// reduced costs) and returns its sink column and length.
func (a *Assigner) augmentingPath(nr, nc, i int) (int, float64) {
	minVal := 0.0
	num := nc
	for it := 0; it < nc; it++ {
		a.remaining[it] = nc - it - 1
	}
	clear(a.sr[:nr])
	clear(a.sc[:nc])
	for j := range a.spc[:nc] {
		a.spc[j] = math.Inf(1)
	}
	sink := -1
	for sink == -1 {
		index := -1
		lowest := math.Inf(1)
		a.sr[i] = true
		row := a.cost[i*nc : i*nc+nc]
		ui := a.u[i]
		for it := 0; it < num; it++ {
			j := a.remaining[it]
			r := minVal + row[j] - ui - a.v[j]
			if r < a.spc[j] {
				a.path[j] = i
				a.spc[j] = r
			}
			if a.spc[j] < lowest || (a.spc[j] == lowest && a.row4col[j] == -1) {
				lowest = a.spc[j]
				index = it
			}
		}
		minVal = lowest
		if index < 0 || math.IsInf(minVal, 1) {
			return -1, minVal
		}
		j := a.remaining[index]
		if a.row4col[j] == -1 {
			sink = j
		} else {
			i = a.row4col[j]
		}
		a.sc[j] = true
		num--
		a.remaining[index] = a.remaining[num]
	}
	return sink, minVal
}

func resizeF(s []float64, n int) []float64 {
	if cap(s) < n {
		s = make([]float64, n)
	}
	s = s[:n]
	clear(s)
	return s
}

func resizeInt(s []int, n, fill int) []int {
	if cap(s) < n {
		s = make([]int, n)
	}
	s = s[:n]
	for i := range s {
		s[i] = fill
	}
	return s
}

func resizeBool(s []bool, n int) []bool {
	if cap(s) < n {
		s = make([]bool, n)
	}
	s = s[:n]
	clear(s)
	return s
}
