package motmetrics

import (
	"math"
	"sort"
)

// solveLSAP solves the rectangular linear sum assignment problem for a
// rows×cols cost matrix in row-major order, minimising the total cost of
// min(rows, cols) pairs. It returns the matched row and column indices,
// sorted by row. Costs must be finite.
//
// It is the shortest augmenting path method of Crouse, "On implementing 2D
// rectangular assignment algorithms" (IEEE TAES 2016), in the form SciPy's
// linear_sum_assignment uses, so ties break the way SciPy breaks them.
func solveLSAP(cost []float64, rows, cols int) (rowInd, colInd []int) {
	if rows == 0 || cols == 0 {
		return nil, nil
	}
	transposed := false
	nr, nc := rows, cols
	c := cost
	if cols < rows {
		transposed = true
		nr, nc = cols, rows
		c = make([]float64, len(cost))
		for i := 0; i < rows; i++ {
			for j := 0; j < cols; j++ {
				c[j*rows+i] = cost[i*cols+j]
			}
		}
	}
	u := make([]float64, nr)
	v := make([]float64, nc)
	spc := make([]float64, nc)
	path := make([]int, nc)
	col4row := make([]int, nr)
	row4col := make([]int, nc)
	sr := make([]bool, nr)
	sc := make([]bool, nc)
	remaining := make([]int, nc)
	for i := range col4row {
		col4row[i] = -1
	}
	for j := range row4col {
		row4col[j] = -1
		path[j] = -1
	}
	for cur := 0; cur < nr; cur++ {
		// Shortest augmenting path from row cur.
		minVal := 0.0
		numRemaining := nc
		for it := 0; it < nc; it++ {
			remaining[it] = nc - it - 1
		}
		clear(sr)
		clear(sc)
		for j := range spc {
			spc[j] = math.Inf(1)
		}
		sink := -1
		i := cur
		for sink == -1 {
			index := -1
			lowest := math.Inf(1)
			sr[i] = true
			for it := 0; it < numRemaining; it++ {
				j := remaining[it]
				r := minVal + c[i*nc+j] - u[i] - v[j]
				if r < spc[j] {
					path[j] = i
					spc[j] = r
				}
				if spc[j] < lowest || (spc[j] == lowest && row4col[j] == -1) {
					lowest = spc[j]
					index = it
				}
			}
			minVal = lowest
			if index < 0 || math.IsInf(minVal, 1) || math.IsNaN(minVal) {
				// Infeasible; cannot happen with finite costs.
				return nil, nil
			}
			j := remaining[index]
			if row4col[j] == -1 {
				sink = j
			} else {
				i = row4col[j]
			}
			sc[j] = true
			numRemaining--
			remaining[index] = remaining[numRemaining]
		}
		u[cur] += minVal
		for i := 0; i < nr; i++ {
			if sr[i] && i != cur {
				u[i] += minVal - spc[col4row[i]]
			}
		}
		for j := 0; j < nc; j++ {
			if sc[j] {
				v[j] -= minVal - spc[j]
			}
		}
		for j := sink; ; {
			i := path[j]
			row4col[j] = i
			col4row[i], j = j, col4row[i]
			if i == cur {
				break
			}
		}
	}
	rowInd = make([]int, nr)
	colInd = make([]int, nr)
	if !transposed {
		for i := 0; i < nr; i++ {
			rowInd[i], colInd[i] = i, col4row[i]
		}
		return rowInd, colInd
	}
	for i := 0; i < nr; i++ {
		rowInd[i], colInd[i] = col4row[i], i
	}
	idx := make([]int, nr)
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return rowInd[idx[a]] < rowInd[idx[b]] })
	r2, c2 := make([]int, nr), make([]int, nr)
	for k, i := range idx {
		r2[k], c2[k] = rowInd[i], colInd[i]
	}
	return r2, c2
}

// solveWithMissing solves an assignment where NaN marks a forbidden pair,
// as py-motmetrics' lap.linear_sum_assignment does: NaN entries become a
// cost so large that the solver first maximises the number of allowed
// pairs, and forbidden pairs are dropped from the answer.
func solveWithMissing(cost []float64, rows, cols int) (rowInd, colInd []int) {
	anyValid, allValid := false, true
	maxAbs := 0.0
	for _, x := range cost {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			allValid = false
			continue
		}
		anyValid = true
		maxAbs = math.Max(maxAbs, math.Abs(x))
	}
	if !anyValid {
		return nil, nil
	}
	c := cost
	if !allValid {
		r := float64(min(rows, cols))
		large := 2*r*(maxAbs+1) + 1
		c = make([]float64, len(cost))
		for k, x := range cost {
			if math.IsNaN(x) || math.IsInf(x, 0) {
				x = large
			}
			c[k] = x
		}
	}
	ri, ci := solveLSAP(c, rows, cols)
	n := 0
	for k := range ri {
		x := cost[ri[k]*cols+ci[k]]
		if math.IsNaN(x) || math.IsInf(x, 0) {
			continue
		}
		ri[n], ci[n] = ri[k], ci[k]
		n++
	}
	return ri[:n], ci[:n]
}
