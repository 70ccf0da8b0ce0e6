package report

import (
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"time"
)

// Progress reports a training loop's progress to w: step/total, percent,
// loss, learning rate, items per second and the time left. On a terminal
// it rewrites one line with \r at most five times a second; elsewhere (a
// log file, a pipe) it prints one line each time another Every percent is
// done. Done prints a summary. Writes are best-effort: the first error is
// kept (Err) and later output is dropped.
//
// A Progress is not safe for concurrent use; call it from the training
// loop's goroutine.
type Progress struct {
	w        io.Writer
	total    int
	label    string
	unit     string
	every    int
	terminal bool
	now      func() time.Time

	start     time.Time
	step      int
	items     int64
	loss, lr  float64
	lastDraw  time.Time
	lastShown int // last multiple of every printed (non-terminal)
	lineLen   int // length of the line on screen (terminal)
	done      bool
	err       error
}

// ProgressOption configures a Progress.
type ProgressOption func(*Progress)

// WithLabel starts each line with label (e.g. "epoch 3").
func WithLabel(label string) ProgressOption { return func(p *Progress) { p.label = label } }

// WithUnit names what Step's items count, for the rate ("img/s"). It
// defaults to "img".
func WithUnit(unit string) ProgressOption { return func(p *Progress) { p.unit = unit } }

// WithEvery sets how many percent apart lines are printed on a
// non-terminal (1-100). It defaults to 10.
func WithEvery(percent int) ProgressOption {
	return func(p *Progress) { p.every = min(max(percent, 1), 100) }
}

// WithTerminal overrides terminal detection.
func WithTerminal(terminal bool) ProgressOption { return func(p *Progress) { p.terminal = terminal } }

// NewProgress starts a progress report of total steps on w. Whether w is a
// terminal is found by asking the kernel for its termios (an *os.File on a
// tty). total <= 0 means unknown: no percent or ETA, and on a non-terminal a
// line every 100 steps.
func NewProgress(w io.Writer, total int, opts ...ProgressOption) *Progress {
	p := &Progress{w: w, total: total, unit: "img", every: 10, now: time.Now}
	if f, ok := w.(*os.File); ok {
		p.terminal = isTerminal(f)
	}
	for _, o := range opts {
		o(p)
	}
	p.start = p.now()
	return p
}

// Step records one finished step that processed items items, with the
// step's loss and learning rate, and prints if it is time to.
func (p *Progress) Step(items int, loss, lr float64) {
	if p.done {
		return
	}
	p.step++
	p.items += int64(max(items, 0))
	p.loss, p.lr = loss, lr
	now := p.now()
	last := p.total > 0 && p.step >= p.total
	if p.terminal {
		if last || p.lastDraw.IsZero() || now.Sub(p.lastDraw) >= 200*time.Millisecond {
			p.lastDraw = now
			p.redraw(p.line(now))
		}
		return
	}
	if p.total <= 0 {
		if p.step%100 == 0 {
			p.print(p.line(now) + "\n")
		}
		return
	}
	pct := min(p.step, p.total) * 100 / p.total
	if mark := pct / p.every * p.every; mark > p.lastShown {
		p.lastShown = mark
		p.print(p.line(now) + "\n")
	}
}

// Done ends the report with a summary line: steps, time, rate and the last
// loss. Later calls do nothing.
func (p *Progress) Done() {
	if p.done {
		return
	}
	p.done = true
	now := p.now()
	el := now.Sub(p.start)
	var b strings.Builder
	if p.label != "" {
		b.WriteString(p.label + ": ")
	}
	fmt.Fprintf(&b, "done %d steps in %s, %.1f %s/s, loss %.4g", p.step, fmtDuration(el), p.rate(el), p.unit, p.loss)
	if p.terminal {
		if p.step > 0 {
			p.redraw(p.line(now))
		}
		p.print("\n" + b.String() + "\n")
		return
	}
	p.print(b.String() + "\n")
}

// Err returns the first error writing to w.
func (p *Progress) Err() error { return p.err }

func (p *Progress) rate(el time.Duration) float64 {
	if el <= 0 {
		return 0
	}
	return float64(p.items) / el.Seconds()
}

// line formats the current state, e.g.
// "epoch 3 120/1000 12.0% loss 0.4321 lr 1.00e-03 85.3 img/s ETA 1m23s".
func (p *Progress) line(now time.Time) string {
	el := now.Sub(p.start)
	var b strings.Builder
	if p.label != "" {
		b.WriteString(p.label + " ")
	}
	if p.total > 0 {
		fmt.Fprintf(&b, "%d/%d %5.1f%%", p.step, p.total, 100*float64(min(p.step, p.total))/float64(p.total))
	} else {
		fmt.Fprintf(&b, "%d", p.step)
	}
	fmt.Fprintf(&b, " loss %.4f lr %.2e %.1f %s/s", p.loss, p.lr, p.rate(el), p.unit)
	if p.total > 0 && p.step > 0 && p.step < p.total {
		eta := time.Duration(float64(el) / float64(p.step) * float64(p.total-p.step))
		b.WriteString(" ETA " + fmtDuration(eta))
	}
	return b.String()
}

// redraw replaces the terminal line with s, blanking what is left of a
// longer previous line.
func (p *Progress) redraw(s string) {
	pad := max(p.lineLen-len(s), 0)
	p.lineLen = len(s)
	p.print("\r" + s + strings.Repeat(" ", pad))
}

func (p *Progress) print(s string) {
	if p.err != nil {
		return
	}
	if _, err := io.WriteString(p.w, s); err != nil {
		p.err = fmt.Errorf("writing progress: %w", err)
	}
}

// fmtDuration prints d rounded for people: 850ms, 12.3s, 4m05s, 2h03m.
func fmtDuration(d time.Duration) string {
	switch {
	case d < 0 || math.IsNaN(float64(d)):
		return "?"
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%.1fs", d.Seconds())
	case d < time.Hour:
		s := int(d.Round(time.Second).Seconds())
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	}
	m := int(d.Round(time.Minute).Minutes())
	return fmt.Sprintf("%dh%02dm", m/60, m%60)
}
