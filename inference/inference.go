// Package inference will run detectors, keypoint models, segmenters and re-ID
// embedders: model bundles and their registry, device profiles, the ONNX
// Runtime and gorgonia runtimes, pre-processing straight into batch tensors,
// the cross-stream batcher, output decoders and NMS.
//
// Frames enter from the pipeline's analyze stage; detections leave in source
// pixel coordinates. Nothing is implemented yet: the pipeline runs without a
// model and its results carry no detections.
package inference
