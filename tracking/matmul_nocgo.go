//go:build !cgo

package tracking

func defaultMatMul() MatMul { return GonumMatMul{} }
