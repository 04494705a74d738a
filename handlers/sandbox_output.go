package handlers

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/insien/orchestrator/internal/runtimes"
	"github.com/insien/orchestrator/internal/sandbox/interact"
)

// A sandbox's output as clients read it: UTF-8 text as is, anything else in base64, written
// straight from the chunks it is held in.

// writeExecJSON answers {"stdout":...,"stdout_encoding":...,"stderr":...,"stderr_encoding":...,
// "exit_code":...,...}, encoding the output straight from its chunks to the connection: the
// answer costs no memory beyond the output already held (a marshalled copy of 10 MiB of output
// would be another 10 to 60 MiB: a string copy, then JSON escaping).
func writeExecJSON(rw gin.ResponseWriter, stdout, stderr *interact.Output, res runtimes.ExecResult) error {
	end, err := json.Marshal(toExecEnd(res))
	if err != nil {
		return err
	}
	rw.Header().Set("Content-Type", "application/json; charset=utf-8")
	rw.WriteHeader(http.StatusOK)
	w := bufio.NewWriterSize(rw, 32<<10)
	_, _ = w.WriteString(`{"stdout":`)
	enc := writeOutput(w, stdout.Chunks(), res.Truncated)
	_, _ = w.WriteString(`,"stdout_encoding":"` + enc + `","stderr":`)
	enc = writeOutput(w, stderr.Chunks(), res.Truncated)
	_, _ = w.WriteString(`,"stderr_encoding":"` + enc + `",`)
	_, _ = w.Write(end[1:]) // the fields of execEnd and the closing brace
	return w.Flush()        // a bufio.Writer keeps its first error: this reports any
}

// writeOutput writes output as a JSON string, as is when it is UTF-8, else in base64, and returns
// the encoding. Output cut at the limit may end inside a character: that partial character is
// dropped.
func writeOutput(w *bufio.Writer, chunks [][]byte, truncated bool) string {
	valid, tail, total := checkUTF8(chunks)
	if valid && (tail == 0 || truncated) {
		writeJSONString(w, chunks, total-tail)
		return "utf-8"
	}
	_ = w.WriteByte('"')
	b64 := base64.NewEncoder(base64.StdEncoding, w)
	for _, chunk := range chunks {
		_, _ = b64.Write(chunk)
	}
	_ = b64.Close()
	_ = w.WriteByte('"')
	return "base64"
}

// checkUTF8 reports whether the chunks, joined, are UTF-8 but for an incomplete character of tail
// bytes at their very end, and their total length.
func checkUTF8(chunks [][]byte) (valid bool, tail, total int) {
	var j runeJoiner
	valid = true
	for _, chunk := range chunks {
		total += len(chunk)
		j.feed(chunk, func(piece []byte) {
			valid = valid && utf8.Valid(piece)
		})
	}
	return valid, len(j.rest()), total
}

// writeJSONString writes the first n bytes of the chunks, joined, as one JSON string escaped
// exactly as encoding/json escapes (HTML-safe; invalid bytes become U+FFFD).
func writeJSONString(w *bufio.Writer, chunks [][]byte, n int) {
	_ = w.WriteByte('"')
	var j runeJoiner
	for _, chunk := range chunks {
		if n <= 0 {
			break
		}
		chunk = chunk[:min(len(chunk), n)]
		n -= len(chunk)
		j.feed(chunk, func(piece []byte) { escapeJSON(w, piece) })
	}
	escapeJSON(w, j.rest())
	_ = w.WriteByte('"')
}

// runeJoiner cuts a byte stream that arrives in chunks into pieces that each decode (character by
// character) as they do within the whole stream: a character split between two chunks is handed
// on whole, as a piece of its own, once its end has arrived.
type runeJoiner struct {
	pending [utf8.UTFMax]byte
	n       int
}

// feed hands chunk on to emit in pieces, keeping back an incomplete character at its end.
func (j *runeJoiner) feed(chunk []byte, emit func([]byte)) {
	for j.n > 0 && len(chunk) > 0 {
		var tmp [utf8.UTFMax]byte
		k := copy(tmp[:], j.pending[:j.n])
		k += copy(tmp[k:], chunk)
		if !utf8.FullRune(tmp[:k]) {
			// Still incomplete, and all of chunk fitted in tmp.
			j.n = copy(j.pending[:], tmp[:k])
			return
		}
		_, size := utf8.DecodeRune(tmp[:k])
		emit(tmp[:size])
		if size <= j.n {
			j.n = copy(j.pending[:], j.pending[size:j.n])
		} else {
			chunk = chunk[size-j.n:]
			j.n = 0
		}
	}
	if len(chunk) == 0 {
		return
	}
	cut := completeUTF8(chunk)
	emit(chunk[:cut])
	j.n = copy(j.pending[:], chunk[cut:])
}

// rest is the incomplete character held back at the end, if any.
func (j *runeJoiner) rest() []byte { return j.pending[:j.n] }

// escapeJSON writes b as the inside of a JSON string, as encoding/json's HTML-safe encoder does.
func escapeJSON(w *bufio.Writer, b []byte) {
	const hex = "0123456789abcdef"
	start := 0
	for i := 0; i < len(b); {
		if c := b[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			_, _ = w.Write(b[start:i])
			switch c {
			case '"', '\\':
				_ = w.WriteByte('\\')
				_ = w.WriteByte(c)
			case '\b':
				_, _ = w.WriteString(`\b`)
			case '\f':
				_, _ = w.WriteString(`\f`)
			case '\n':
				_, _ = w.WriteString(`\n`)
			case '\r':
				_, _ = w.WriteString(`\r`)
			case '\t':
				_, _ = w.WriteString(`\t`)
			default:
				_, _ = w.WriteString(`\u00`)
				_ = w.WriteByte(hex[c>>4])
				_ = w.WriteByte(hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRune(b[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			_, _ = w.Write(b[start:i])
			_, _ = w.WriteString(`\ufffd`)
		case r == '\u2028' || r == '\u2029':
			// Valid JSON, but line terminators in JavaScript: encoding/json escapes them too.
			_, _ = w.Write(b[start:i])
			_, _ = w.WriteString(`\u202`)
			_ = w.WriteByte(hex[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	_, _ = w.Write(b[start:])
}

// encode returns b as a JSON string value: as is when it is UTF-8, else base64.
func encode(b []byte) (string, string) {
	if utf8.Valid(b) {
		return string(b), "utf-8"
	}
	return base64.StdEncoding.EncodeToString(b), "base64"
}

// completeUTF8 returns the length of b without a multi-byte character cut short at its end.
func completeUTF8(b []byte) int {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if utf8.FullRune(b[i:]) {
				return len(b)
			}
			return i
		}
	}
	return len(b)
}
