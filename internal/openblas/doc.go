// Package openblas runs dense matrix products on OpenBLAS (Debian's
// libopenblas-dev) through cgo. OpenBLAS ran sgemm at 82 GFLOP/s on one core
// of our 2-core machines where gonum's pure Go ran 24. [Implementation] is a
// gonum BLAS (for gorgonia and gonum/mat) whose general matrix products go to
// OpenBLAS; everything else is gonum's.
//
// Without cgo the package builds on gonum alone (nocgo.go): the same API,
// at gonum's speed.
package openblas
