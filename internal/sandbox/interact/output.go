package interact

// Chunk sizes of an Output: small for the usual short output, growing to maxChunk.
const (
	firstChunk = 512
	maxChunk   = 64 << 10
)

// Output keeps a command's output in memory as chunks allocated as it arrives: the first small,
// each next one twice the last, up to maxChunk. Holding n bytes costs at most n plus one chunk:
// no doubling buffer whose earlier copies are garbage, and no final copy (a string) to encode it,
// since Chunks hands the bytes out where they are.
type Output struct {
	chunks [][]byte
	n      int
}

// Write appends p; it never fails.
func (o *Output) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		k := len(o.chunks)
		if k == 0 || len(o.chunks[k-1]) == cap(o.chunks[k-1]) {
			size := firstChunk
			if k > 0 {
				size = min(2*cap(o.chunks[k-1]), maxChunk)
			}
			o.chunks = append(o.chunks, make([]byte, 0, size))
			k++
		}
		last := o.chunks[k-1]
		m := min(len(p), cap(last)-len(last))
		o.chunks[k-1] = append(last, p[:m]...)
		p = p[m:]
	}
	o.n += n
	return n, nil
}

// Len is the number of bytes written.
func (o *Output) Len() int { return o.n }

// Chunks is the content, in order; the slices stay valid until the next Write.
func (o *Output) Chunks() [][]byte { return o.chunks }
