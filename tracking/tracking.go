// Package tracking will turn per-frame detections into identities: a Kalman
// filter, optimal assignment, a Deep SORT tracker with an appearance gallery
// and a ByteTrack-style second pass, and MOT metrics (CLEAR, IDF1, HOTA).
//
// Detections of one stream enter in frame order; tracks and track events
// leave. Nothing is implemented yet.
package tracking
