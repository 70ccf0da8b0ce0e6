// Package onnxpb holds the ONNX protobuf messages (ModelProto, GraphProto,
// NodeProto, TensorProto, …), generated from the ONNX project's
// onnx.proto3 (Apache-2.0, IR version 8; newer fields survive a read and
// write as unknown fields).
//
// Regenerate with Debian's protobuf-compiler and
// google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12 on PATH:
//
//	go generate ./inference/onnx/onnxpb
package onnxpb

//go:generate protoc --go_out=. --go_opt=paths=source_relative --go_opt=Monnx.proto3=github.com/vigil-video/vigil/inference/onnx/onnxpb onnx.proto3
