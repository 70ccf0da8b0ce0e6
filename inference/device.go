package inference

import (
	"fmt"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/cpu"
)

// Runtime names an inference runtime.
type Runtime string

// Runtimes.
const (
	// RuntimeORT is ONNX Runtime through cgo: the fast path.
	RuntimeORT Runtime = "onnxruntime"
	// RuntimePureGo is Vigil's pure-Go runtime on gorgonia: no cgo needed.
	RuntimePureGo Runtime = "purego"
)

// Device is a device profile: where and how a model runs.
type Device struct {
	// Name is the profile as configured: cpu, purego, cuda:N or tensorrt:N.
	Name    string
	Runtime Runtime
	// Provider is ONNX Runtime's execution provider: cpu, cuda or tensorrt.
	Provider string
	// ID is the GPU index for cuda and tensorrt.
	ID int
	// Threads is the intra-op thread count, 0 for the runtime's choice.
	Threads int
	// GraphOptimization is ONNX Runtime's level: all, extended, basic, off.
	GraphOptimization string
}

// ParseDevice parses a device profile name ("" means cpu).
func ParseDevice(name string, threads int) (Device, error) {
	if name == "" {
		name = "cpu"
	}
	d := Device{Name: name, Threads: threads}
	kind, id, hasID := strings.Cut(name, ":")
	switch {
	case name == "cpu":
		d.Runtime, d.Provider = RuntimeORT, "cpu"
	case name == "purego":
		d.Runtime = RuntimePureGo
	case (kind == "cuda" || kind == "tensorrt") && hasID:
		n, err := strconv.Atoi(id)
		if err != nil || n < 0 {
			return Device{}, fmt.Errorf("device %q: GPU index must be a number >= 0", name)
		}
		d.Runtime, d.Provider, d.ID = RuntimeORT, kind, n
	default:
		return Device{}, fmt.Errorf("device %q: must be cpu, purego, cuda:N or tensorrt:N", name)
	}
	return d, nil
}

// GPU reports whether the profile runs on a GPU.
func (d Device) GPU() bool { return d.Provider == "cuda" || d.Provider == "tensorrt" }

// CanRun reports whether the device can run a variant of precision p at
// all (whether it is fast is measured at load): fp32 runs everywhere;
// int8 QDQ runs in ONNX Runtime on CPUs and GPUs; fp16 only on GPUs; the
// pure-Go runtime runs fp32 only.
func (d Device) CanRun(p Precision) bool {
	switch p {
	case FP32:
		return true
	case INT8:
		return d.Runtime == RuntimeORT
	case FP16:
		return d.GPU()
	}
	return false
}

// CPUFeatures lists the CPU's instruction-set extensions that matter for
// inference: avx2 (fp32 and int8 kernels), avx512f, avx512_vnni and
// avx_vnni (fast int8 dot products), amx_int8 and amx_bf16 (matrix tiles).
func CPUFeatures() []string {
	var f []string
	add := func(ok bool, name string) {
		if ok {
			f = append(f, name)
		}
	}
	if runtime.GOARCH == "amd64" {
		add(cpu.X86.HasAVX2, "avx2")
		add(cpu.X86.HasFMA, "fma")
		add(cpu.X86.HasAVX512F, "avx512f")
		add(cpu.X86.HasAVX512VNNI, "avx512_vnni")
		add(cpu.X86.HasAVXVNNI, "avx_vnni")
		add(cpu.X86.HasAMXInt8, "amx_int8")
		add(cpu.X86.HasAMXBF16, "amx_bf16")
	}
	if runtime.GOARCH == "arm64" {
		add(cpu.ARM64.HasASIMDDP, "dotprod")
		add(cpu.ARM64.HasI8MM, "i8mm")
	}
	return f
}

// Int8Worthwhile reports whether the CPU has integer dot-product
// instructions that make an int8 variant worth timing on the CPU profile
// (AVX2 at least; VNNI or AMX make it fast).
func Int8Worthwhile() bool {
	switch runtime.GOARCH {
	case "amd64":
		return cpu.X86.HasAVX2
	case "arm64":
		return cpu.ARM64.HasASIMDDP
	}
	return false
}
