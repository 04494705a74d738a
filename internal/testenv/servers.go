package testenv

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// RedisServer is a private redis-server a test can stop and start again.
type RedisServer struct {
	t    testing.TB
	port int
	dir  string
	cmd  *exec.Cmd
}

// StartRedis runs a private Redis on a free loopback port for tests that take Redis away.
func StartRedis(t testing.TB) *RedisServer {
	t.Helper()
	s := &RedisServer{t: t, port: FreePort(t), dir: t.TempDir()}
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

// URL is the server's address.
func (s *RedisServer) URL() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", s.port) }

// Start launches the server and waits until it accepts connections.
func (s *RedisServer) Start() {
	s.t.Helper()
	bin := os.Getenv(EnvRedisServer)
	if bin == "" {
		bin = "redis-server"
	}
	s.cmd = exec.Command(bin, "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", s.dir)
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("starting redis-server (set %s): %v", EnvRedisServer, err)
	}
	waitPort(s.t, s.port)
}

// Stop kills the server and waits for it to exit.
func (s *RedisServer) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// PostgresServer is a private Postgres cluster a test can stop and start again.
type PostgresServer struct {
	t      testing.TB
	port   int
	dir    string
	bindir string
}

// StartPostgres initialises and runs a private Postgres on a free loopback port (a few seconds).
func StartPostgres(t testing.TB) *PostgresServer {
	t.Helper()
	bindir := Require(t, EnvPGBinDir)
	root, err := os.MkdirTemp("", "orch-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	s := &PostgresServer{t: t, port: FreePort(t), dir: filepath.Join(root, "data"), bindir: bindir}
	if err := os.Mkdir(s.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	s.chownToPostgres(s.dir)
	s.run("initdb", "-D", s.dir, "-U", "postgres", "--auth=trust", "--no-sync")
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

// URL is an admin URL of the cluster's postgres database.
func (s *PostgresServer) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.port)
}

// Start starts the cluster and waits until it accepts connections.
func (s *PostgresServer) Start() {
	s.t.Helper()
	s.run("pg_ctl", "-D", s.dir, "-w", "-l", filepath.Join(s.dir, "log"), "-o",
		fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off", s.port, s.dir), "start")
}

// Stop shuts the cluster down immediately.
func (s *PostgresServer) Stop() {
	_ = s.command("pg_ctl", "-D", s.dir, "-w", "-m", "immediate", "stop").Run()
}

func (s *PostgresServer) run(tool string, args ...string) {
	s.t.Helper()
	if out, err := s.command(tool, args...).CombinedOutput(); err != nil {
		s.t.Fatalf("%s: %v\n%s", tool, err, out)
	}
}

// command runs a Postgres tool as the postgres user when we are root: Postgres refuses root.
func (s *PostgresServer) command(tool string, args ...string) *exec.Cmd {
	path := filepath.Join(s.bindir, tool)
	if os.Geteuid() == 0 {
		return exec.Command("runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	}
	return exec.Command(path, args...)
}

func (s *PostgresServer) chownToPostgres(dir string) {
	if os.Geteuid() != 0 {
		return
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		s.t.Fatalf("looking up the postgres user: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(dir, uid, gid); err != nil {
		s.t.Fatal(err)
	}
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func waitPort(t testing.TB, port int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 200*time.Millisecond)
		if err == nil {
			conn.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("nothing listens on port %d after 10s", port)
}
