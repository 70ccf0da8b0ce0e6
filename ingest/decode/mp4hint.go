//go:build cgo

package decode

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
)

// mp4Hint explains why libavformat may have refused an MP4 file: a file cut
// short before its moov box (the index, which ffmpeg writes last unless asked
// for +faststart) cannot be read. It returns "" for anything else.
func mp4Hint(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return ""
	}
	size := st.Size()
	var hdr [16]byte
	for off, i := int64(0), 0; off < size; i++ {
		if _, err := f.ReadAt(hdr[:8], off); err != nil {
			return ""
		}
		boxSize := int64(binary.BigEndian.Uint32(hdr[:4]))
		typ := string(hdr[4:8])
		if i == 0 && typ != "ftyp" {
			return "" // not MP4
		}
		if typ == "moov" {
			return ""
		}
		switch boxSize {
		case 0: // to the end of the file
			boxSize = size - off
		case 1: // 64-bit size
			if _, err := f.ReadAt(hdr[8:16], off+8); err != nil && err != io.EOF {
				return ""
			}
			boxSize = int64(binary.BigEndian.Uint64(hdr[8:16]))
		}
		if boxSize < 8 {
			return ""
		}
		if off+boxSize > size {
			return fmt.Sprintf("MP4 file ends inside its %s box and has no moov index (cut short or never finished)", typ)
		}
		off += boxSize
	}
	return "MP4 file has no moov index"
}
