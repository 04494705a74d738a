package client

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// TestReadEvents: the stream parser follows the event-stream format where the service's streams
// could exercise it only by chance: several data lines, CRLF, comments, unnamed events, a cut.
func TestReadEvents(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string // "name=data"
	}{
		{name: "one", in: "event: stdout\ndata: {\"a\":1}\n\n", want: []string{`stdout={"a":1}`}},
		{name: "keepalive comments", in: ": keepalive\n\nevent: exit\ndata: {}\n\n: keepalive\n\n", want: []string{"exit={}"}},
		{name: "data lines joined", in: "event: x\ndata: a\ndata: b\n\n", want: []string{"x=a\nb"}},
		{name: "CRLF", in: "event: x\r\ndata: y\r\n\r\n", want: []string{"x=y"}},
		{name: "unnamed", in: "data: z\n\n", want: []string{"message=z"}},
		{name: "no space after the colon", in: "event:x\ndata:y\n\n", want: []string{"x=y"}},
		{name: "a cut event is dropped", in: "event: a\ndata: 1\n\nevent: b\ndata: 2\n", want: []string{"a=1"}},
		{name: "a long line", in: "event: big\ndata: " + strings.Repeat("x", 200<<10) + "\n\n", want: []string{"big=" + strings.Repeat("x", 200<<10)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for ev, err := range readEvents(iotest.OneByteReader(strings.NewReader(tt.in))) {
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, ev.name+"="+string(ev.data))
			}
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("events %q, want %q", got, tt.want)
			}
		})
	}

	t.Run("read error", func(t *testing.T) {
		broken := errors.New("broken")
		var errs []error
		for _, err := range readEvents(io.MultiReader(strings.NewReader("event: a\ndata: 1\n\nevent: b\n"), iotest.ErrReader(broken))) {
			if err != nil {
				errs = append(errs, err)
			}
		}
		if len(errs) != 1 || !errors.Is(errs[0], broken) {
			t.Errorf("errors %v, want the reader's", errs)
		}
	})
}
