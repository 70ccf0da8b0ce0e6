// Package training trains Vigil's own models with gorgonia: TrainDetector
// fits the CenterNet-style detector of training/models on labelled samples
// (training/dataset: generated scenes, COCO and YOLO files, the hard-frame
// store in training/store), with augmentation (training/augment), Adam,
// RMSProp or SGD with momentum, learning-rate schedules with warm-up, L2,
// gradient clipping, validation by COCO mAP (training/evaluate), early
// stopping and checkpoints. training/report draws the curves and the worst
// validation images. The trained model exports to ONNX in the inference
// centernet family's contract, so the server runs it like any other model.
//
// Labelled images enter; model bundles leave.
package training
