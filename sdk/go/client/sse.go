package client

import (
	"bufio"
	"bytes"
	"io"
	"iter"
	"strings"
)

// sseEvent is one server-sent event: its name ("message" when the stream gave none) and data.
type sseEvent struct {
	name string
	data []byte
}

// readEvents yields the events of a text/event-stream body, as the HTML spec's parser would:
// "event:" names the next event, "data:" lines are joined with "\n", a blank line dispatches,
// comments (": keepalive") are skipped. It ends at EOF (a partial event is dropped) or the first
// read error, which it yields.
func readEvents(r io.Reader) iter.Seq2[sseEvent, error] {
	return func(yield func(sseEvent, error) bool) {
		br := bufio.NewReaderSize(r, 64<<10)
		var name string
		var data bytes.Buffer
		hasData := false
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				if err != io.EOF {
					yield(sseEvent{}, err)
				}
				return
			}
			line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
			if line == "" {
				if hasData {
					if name == "" {
						name = "message"
					}
					if !yield(sseEvent{name: name, data: bytes.Clone(data.Bytes())}, nil) {
						return
					}
				}
				name, hasData = "", false
				data.Reset()
				continue
			}
			if strings.HasPrefix(line, ":") {
				continue
			}
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "event":
				name = value
			case "data":
				if hasData {
					data.WriteByte('\n')
				}
				data.WriteString(value)
				hasData = true
			}
		}
	}
}
