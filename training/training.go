// Package training trains Vigil's own models with gorgonia: TrainDetector
// fits the CenterNet-style detector, TrainSegmenter the UNet person
// segmenter and TrainEmbedder the re-ID embedder of training/models, on
// labelled samples (training/dataset: generated scenes, COCO and YOLO
// files, the hard-frame store of training/store), with augmentation
// (training/augment), Adam, RMSProp or SGD with momentum, learning-rate
// schedules with warm-up, L2, gradient clipping, validation (COCO mAP,
// mIoU, re-ID rank-1 and mAP from training/evaluate), early stopping and
// checkpoints. training/report draws the curves and the worst validation
// images. The trained models export to ONNX in the contracts of the
// inference families (centernet, selfie, embedding), so the server runs
// them like any other model.
//
// Labelled images enter; model bundles leave.
package training
