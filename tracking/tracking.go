// Package tracking turns per-frame detections into identities: a Kalman
// filter (kalman.go), optimal assignment (assign.go), appearance distances
// (distance.go) and the Tracker (tracker.go): Deep SORT with an appearance
// gallery and a ByteTrack-style pass on low-score detections, or IoU-only
// SORT. Subpackage motmetrics scores tracks (CLEAR MOT, IDF1, HOTA).
//
// Detections of one stream enter in frame order; tracks and track events
// leave. The pipeline does not run trackers yet.
package tracking
