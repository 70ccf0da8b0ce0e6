// Package training will train and fine-tune Vigil's own models with gorgonia:
// data sets (the hard-frame store, COCO and YOLO files, synthetic scenes),
// augmentation, optimisers and schedules, evaluation, int8 quantization and
// ONNX export.
//
// Labelled images enter; model bundles leave. Nothing is implemented yet.
package training
