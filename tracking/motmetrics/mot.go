package motmetrics

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
)

// ReadMOT reads a MOTChallenge text file (see ParseMOT).
func ReadMOT(path string) (Sequence, error) {
	f, err := os.Open(path)
	if err != nil {
		return Sequence{}, fmt.Errorf("reading MOT file: %w", err)
	}
	defer f.Close()
	return ParseMOT(f, path)
}

// ParseMOT parses MOTChallenge text, one object per line:
//
//	frame,id,x,y,w,h,conf[,more...]
//
// with 1-based integer frames and ids and top-left boxes. Fields are
// separated by commas and/or white space; columns after conf (class,
// visibility, world coordinates) are ignored, as are blank lines. Like
// py-motmetrics' loadtxt(fmt='mot15-2D'), which keeps rows with
// conf >= -1, rows whose conf is below -1 (or NaN) are dropped. A ground
// truth row with conf 0 is kept but marked Ignored (see Object). Errors
// name the file (name) and line. An id repeated within a frame is an
// error.
func ParseMOT(r io.Reader, name string) (Sequence, error) {
	var seq Sequence
	type key struct{ frame, id int }
	seen := make(map[key]int)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if line == 1 {
			text = strings.TrimPrefix(text, "\ufeff")
		}
		if text == "" {
			continue
		}
		fields := strings.FieldsFunc(text, func(r rune) bool {
			return r == ',' || r == ' ' || r == '\t' || r == '\r'
		})
		if len(fields) < 7 {
			return Sequence{}, fmt.Errorf("%s:%d: got %d fields, want at least 7 (frame,id,x,y,w,h,conf)", name, line, len(fields))
		}
		var v [7]float64
		for i := range v {
			x, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				return Sequence{}, fmt.Errorf("%s:%d: field %d (%s): %q is not a number", name, line, i+1, columnNames[i], fields[i])
			}
			if i < 6 && (math.IsNaN(x) || math.IsInf(x, 0)) {
				return Sequence{}, fmt.Errorf("%s:%d: field %d (%s) is %v", name, line, i+1, columnNames[i], x)
			}
			v[i] = x
		}
		frame, ok1 := toInt(v[0])
		id, ok2 := toInt(v[1])
		switch {
		case !ok1:
			return Sequence{}, fmt.Errorf("%s:%d: frame %q is not an integer", name, line, fields[0])
		case !ok2:
			return Sequence{}, fmt.Errorf("%s:%d: id %q is not an integer", name, line, fields[1])
		}
		if !(v[6] >= -1) { // loadtxt's min_confidence=-1; NaN fails too
			continue
		}
		k := key{frame, id}
		if prev, dup := seen[k]; dup {
			return Sequence{}, fmt.Errorf("%s:%d: frame %d: id %d already given on line %d", name, line, frame, id, prev)
		}
		seen[k] = line
		seq.Add(frame, Object{
			ID:      id,
			Box:     Box{X: v[2], Y: v[3], W: v[4], H: v[5]},
			Conf:    v[6],
			Ignored: v[6] == 0,
		})
	}
	if err := sc.Err(); err != nil {
		return Sequence{}, fmt.Errorf("%s:%d: reading: %w", name, line+1, err)
	}
	return seq, nil
}

var columnNames = [7]string{"frame", "id", "x", "y", "w", "h", "conf"}

// toInt converts an integral float within ±2^53 to int.
func toInt(x float64) (int, bool) {
	if x != math.Trunc(x) || math.Abs(x) > 1<<53 {
		return 0, false
	}
	return int(x), true
}
