package runtimes_test

import (
	"fmt"
	"testing"

	"github.com/insien/orchestrator/internal/runtimes"
)

// TestListeningTCPPorts reads listening sockets, and only those, from the kernel's tables.
func TestListeningTCPPorts(t *testing.T) {
	const tcp = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0
   1: 0100007F:2328 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1 0 100 0 0 10 0
   2: 0100007F:1F90 0100007F:A3B2 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0 20 4 30 10 -1
`
	const tcp6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:0BB8 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4 1 0 100 0 0 10 0
   1: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5 1 0 100 0 0 10 0
`
	for _, tc := range []struct {
		name   string
		tables []string
		want   string
	}{
		{"IPv4 listeners, not established connections", []string{tcp}, "[8080 9000]"},
		{"both families, each port once", []string{tcp, tcp6}, "[3000 8080 9000]"},
		{"nothing", []string{"", ""}, "[]"},
		{"garbage", []string{"not a table\n0: zz:zz 0A\n"}, "[]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var tables [][]byte
			for _, table := range tc.tables {
				tables = append(tables, []byte(table))
			}
			if got := fmt.Sprint(runtimes.ListeningTCPPorts(tables...)); got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}
