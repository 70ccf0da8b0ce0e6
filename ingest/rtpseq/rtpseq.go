// Package rtpseq follows the sequence numbers of one RTP stream to tell lost,
// late and restarted packets apart, as RFC 3550 appendix A.1 does. Sequence
// numbers go in one packet at a time; what each one says about the stream
// comes out. It has no goroutines and no I/O.
package rtpseq

// Limits from RFC 3550 appendix A.1.
const (
	// MaxDropout is the largest forward jump counted as loss rather than a
	// restart of the sequence.
	MaxDropout = 3000
	// MaxMisorder is the largest backward jump treated as a late (reordered
	// or duplicated) packet rather than a restart.
	MaxMisorder = 100
)

// Tracker follows one stream. The zero value is ready to use; a Tracker is
// not safe for concurrent use.
type Tracker struct {
	started bool
	next    uint16 // the sequence number expected next
}

// Step is what one sequence number says about the stream.
type Step struct {
	// Lost is how many packets went missing just before this one.
	Lost int
	// Late reports a packet older than one already seen (reordered or a
	// duplicate); receivers usually drop it.
	Late bool
	// Restart reports a jump too large for loss or reordering: the sender
	// restarted its sequence, and what was being assembled is suspect.
	Restart bool
}

// Observe records seq and reports what it means.
func (t *Tracker) Observe(seq uint16) Step {
	if !t.started {
		t.started, t.next = true, seq+1
		return Step{}
	}
	gap := seq - t.next // modulo 2^16
	switch {
	case gap == 0:
		t.next = seq + 1
		return Step{}
	case gap < MaxDropout:
		t.next = seq + 1
		return Step{Lost: int(gap)}
	case uint16(t.next-seq) <= MaxMisorder:
		return Step{Late: true}
	default:
		t.next = seq + 1
		return Step{Restart: true}
	}
}
