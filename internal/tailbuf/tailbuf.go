// Package tailbuf keeps the end of what is written: a task's log the agent
// keeps, an exec hook's standard error that its failure quotes.
package tailbuf

// Buffer keeps the last Max bytes written to it, and counts the bytes
// written before them. Writes never fail.
type Buffer struct {
	Max int
	buf []byte
	// dropped is how many bytes were written before buf; last is the
	// last of them.
	dropped int
	last    byte
}

func (b *Buffer) Write(p []byte) (int, error) {
	if len(p) >= b.Max {
		b.drop(len(b.buf))
		b.buf = b.buf[:0]
		cut := len(p) - b.Max
		if cut > 0 {
			b.dropped, b.last = b.dropped+cut, p[cut-1]
		}
		b.buf = append(b.buf, p[cut:]...)
		return len(p), nil
	}
	b.buf = append(b.buf, p...)
	if len(b.buf) >= 2*b.Max { // trimmed now and then: linear in all
		b.trim()
	}
	return len(p), nil
}

// Bytes are the last Max bytes written, all of them when fewer were.
func (b *Buffer) Bytes() []byte {
	b.trim()
	return b.buf
}

// Dropped is how many bytes were written before Bytes, and the last of
// them (0 when none was).
func (b *Buffer) Dropped() (int, byte) {
	b.trim()
	return b.dropped, b.last
}

// drop counts the first n bytes of buf as dropped.
func (b *Buffer) drop(n int) {
	if n > 0 {
		b.dropped, b.last = b.dropped+n, b.buf[n-1]
	}
}

func (b *Buffer) trim() {
	if cut := len(b.buf) - b.Max; cut > 0 {
		b.drop(cut)
		b.buf = b.buf[:copy(b.buf, b.buf[cut:])]
	}
}
