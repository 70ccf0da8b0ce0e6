package inference

import (
	"maps"
	"slices"
)

// family holds what Vigil knows about a model family without being told:
// its task, its input conventions, and its labels.
type family struct {
	task      Task
	input     InputSpec
	labels    []string
	keypoints []string
	skeleton  [][2]int
}

// FamilyNames lists the model families Vigil can import, sorted.
func FamilyNames() []string { return slices.Sorted(maps.Keys(families)) }

var (
	unit = [3]float32{1, 1, 1}

	// cocoLabels are the 80 COCO detection classes in the usual
	// (contiguous, 0-based) order that COCO-trained detectors emit.
	cocoLabels = []string{
		"person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
		"fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
		"elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
		"skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
		"wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
		"broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant", "bed",
		"dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone", "microwave", "oven",
		"toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush",
	}

	// COCOKeypoints are COCO's 17 person keypoints, in order.
	COCOKeypoints = []string{
		"nose", "left_eye", "right_eye", "left_ear", "right_ear",
		"left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
		"left_wrist", "right_wrist", "left_hip", "right_hip",
		"left_knee", "right_knee", "left_ankle", "right_ankle",
	}

	// cocoSkeleton joins COCO keypoints (0-based) as COCO's annotations do.
	cocoSkeleton = [][2]int{
		{15, 13}, {13, 11}, {16, 14}, {14, 12}, {11, 12}, {5, 11}, {6, 12}, {5, 6}, {5, 7},
		{6, 8}, {7, 9}, {8, 10}, {1, 2}, {0, 1}, {0, 2}, {1, 3}, {2, 4}, {3, 5}, {4, 6},
	}

	families = map[string]family{
		// YOLOX: BGR 0..255, letterbox padded with 114 at the bottom right.
		"yolox": {task: TaskDetect, labels: cocoLabels, input: InputSpec{
			Layout: "nchw", Color: "bgr", Resize: "letterbox", Align: "topleft", Std: unit, Pad: 114}},
		// FastestDet: BGR / 255, plain resize.
		"fastestdet": {task: TaskDetect, labels: cocoLabels, input: InputSpec{
			Layout: "nchw", Color: "bgr", Resize: "stretch", Std: [3]float32{255, 255, 255}}},
		// NanoDet: BGR with ImageNet mean and std in 0..255 units.
		"nanodet": {task: TaskDetect, labels: cocoLabels, input: InputSpec{
			Layout: "nchw", Color: "bgr", Resize: "stretch",
			Mean: [3]float32{103.53, 116.28, 123.675}, Std: [3]float32{57.375, 57.12, 58.395}}},
		// Ultra-Light face detector: RGB (x - 127) / 128 at 320x240.
		"ultraface": {task: TaskDetect, labels: []string{"background", "face"}, input: InputSpec{
			Width: 320, Height: 240, Layout: "nchw", Color: "rgb", Resize: "stretch",
			Mean: [3]float32{127, 127, 127}, Std: [3]float32{128, 128, 128}}},
		// BodyPix (MobileNet v1, stride 16): any size of the form 16k+1
		// (769x577 finds the small people of surveillance views; 353x257
		// finds a third of them);
		// RGB x/127.5 - 1.
		"bodypix": {task: TaskKeypoints, labels: []string{"person"}, keypoints: COCOKeypoints, skeleton: cocoSkeleton, input: InputSpec{
			Width: 769, Height: 577, Layout: "nhwc", Color: "rgb", Resize: "letterbox", Align: "center",
			Mean: [3]float32{127.5, 127.5, 127.5}, Std: [3]float32{127.5, 127.5, 127.5}}},
		// MediaPipe selfie segmentation (landscape): RGB / 255 at 256x144.
		"selfie": {task: TaskSegment, labels: []string{"person"}, input: InputSpec{
			Width: 256, Height: 144, Layout: "nhwc", Color: "rgb", Resize: "stretch",
			Std: [3]float32{255, 255, 255}}},
		// Open Model Zoo person re-identification: BGR 0..255, 128x256 crops.
		"embedding": {task: TaskEmbed, input: InputSpec{
			Width: 128, Height: 256, Layout: "nhwc", Color: "bgr", Resize: "stretch", Std: unit}},
		// Vigil's own CenterNet detectors (training issue): RGB / 255,
		// letterboxed in the centre with black.
		"centernet": {task: TaskDetect, input: InputSpec{
			Layout: "nchw", Color: "rgb", Resize: "letterbox", Align: "center", Std: [3]float32{255, 255, 255}}},
	}
)
