// Package inference runs detectors, keypoint models, segmenters and re-ID
// embedders on decoded frames, batched across streams.
//
// A model is a Bundle (model.yaml plus one ONNX file per variant) found in
// a Registry of versions or made on the fly from a plain ONNX file of a
// known family. LoadModel opens it on a Device profile (ONNX Runtime on
// the CPU or a GPU provider, or the pure-Go runtime on gorgonia), times
// each variant the device can run and serves the fastest within the
// accuracy bound, and starts the model's batcher: one goroutine that owns
// the runners and buffers, gathers requests from every stream, prepares
// them straight from YUV into the batch tensor (package prep), runs them,
// and decodes the outputs into detections in source pixels (package
// decoders). The Engine holds the loaded models by name and is the
// pipeline's Analyzer; it also serves GET /api/models.
//
// Subpackages: ort and purego (runtimes), prep (pre-processing), decoders
// (output decoders and NMS), quant (int8 quantization), onnx (reading and
// writing ONNX), cocoeval (COCO evaluation).
package inference
