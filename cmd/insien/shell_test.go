package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// terminal is insien running as a built binary on a real pseudo-terminal: the test types on
// the master side and reads what the screen would show.
type terminal struct {
	t        *testing.T
	ptmx     *os.File // what a terminal emulator holds
	tty      *os.File // insien's stdin, stdout and stderr (kept open to read its settings)
	cmd      *exec.Cmd
	mu       sync.Mutex
	screen   bytes.Buffer
	waitDone chan struct{}
	waitErr  error
}

// binary builds insien once for the whole test into a temporary directory.
func (e *env) binary(t *testing.T) string {
	t.Helper()
	e.buildOnce.Do(func() {
		e.bin = filepath.Join(e.t.TempDir(), "insien")
		if out, err := exec.Command("go", "build", "-o", e.bin, ".").CombinedOutput(); err != nil {
			e.buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if e.buildErr != nil {
		t.Fatal(e.buildErr)
	}
	return e.bin
}

// startTerminal runs bin args on a new 24x80 pseudo-terminal as its controlling terminal.
func startTerminal(t *testing.T, bin string, env []string, args ...string) *terminal {
	t.Helper()
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 24, Cols: 80}); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true} // Ctty 0: its stdin
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	term := &terminal{t: t, ptmx: ptmx, tty: tty, cmd: cmd, waitDone: make(chan struct{})}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := ptmx.Read(buf)
			term.mu.Lock()
			term.screen.Write(buf[:n])
			term.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	go func() {
		term.waitErr = cmd.Wait()
		close(term.waitDone)
	}()
	t.Cleanup(func() {
		select {
		case <-term.waitDone:
		default:
			cmd.Process.Kill()
			<-term.waitDone
		}
		ptmx.Close()
		tty.Close()
	})
	return term
}

// typeKeys writes keys as a person types them.
func (term *terminal) typeKeys(keys string) {
	term.t.Helper()
	if _, err := term.ptmx.Write([]byte(keys)); err != nil {
		term.t.Fatal(err)
	}
}

// waitFor waits until the screen, from offset on, shows text; it returns the offset past it.
func (term *terminal) waitFor(offset int, text string) int {
	term.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		term.mu.Lock()
		screen := term.screen.String()
		term.mu.Unlock()
		if i := strings.Index(screen[min(offset, len(screen)):], text); i >= 0 {
			return offset + i + len(text)
		}
		time.Sleep(20 * time.Millisecond)
	}
	term.mu.Lock()
	defer term.mu.Unlock()
	term.t.Fatalf("the terminal never showed %q; it shows:\n%q", text, term.screen.String())
	return 0
}

// exitCode waits for insien to end.
func (term *terminal) exitCode() int {
	term.t.Helper()
	select {
	case <-term.waitDone:
	case <-time.After(30 * time.Second):
		term.t.Fatal("insien did not exit")
	}
	var exit *exec.ExitError
	if errors.As(term.waitErr, &exit) {
		return exit.ExitCode()
	}
	if term.waitErr != nil {
		term.t.Fatal(term.waitErr)
	}
	return 0
}

// finalScreen is everything insien wrote, once it has exited and the screen is quiet (the test
// keeps the terminal open, so no end of file says when the last bytes are read).
func (term *terminal) finalScreen() string {
	term.t.Helper()
	<-term.waitDone
	last := -1
	for {
		term.mu.Lock()
		n, screen := term.screen.Len(), term.screen.String()
		term.mu.Unlock()
		if n == last {
			return screen
		}
		last = n
		time.Sleep(200 * time.Millisecond)
	}
}

// termios is the terminal's settings as insien left them.
func (term *terminal) termios() *unix.Termios {
	term.t.Helper()
	st, err := unix.IoctlGetTermios(int(term.tty.Fd()), unix.TCGETS)
	if err != nil {
		term.t.Fatal(err)
	}
	return st
}

// testShell drives `insien shell` as a person at a terminal would: a prompt, a command and its
// echo, Ctrl-C reaching the remote command, a resized window, exit; and the terminal is as it
// was before.
func (e *env) testShell(t *testing.T) {
	bin := e.binary(t)
	sb := e.sandbox(t)
	env := []string{"INSIEN_API_URL=" + e.svc.URL, "INSIEN_API_KEY=" + e.svc.APIKey, "TERM=xterm"}

	term := startTerminal(t, bin, env, "shell", sb)
	before := term.termios()
	if before.Lflag&unix.ECHO == 0 || before.Lflag&unix.ICANON == 0 {
		t.Fatalf("a new pty is not in cooked mode: lflag %#x", before.Lflag)
	}
	at := term.waitFor(0, "# ") // busybox sh's prompt (root: #)
	if raw := term.termios(); raw.Lflag&(unix.ECHO|unix.ICANON|unix.ISIG) != 0 {
		t.Errorf("during the shell the local terminal is not raw: lflag %#x", raw.Lflag)
	}

	term.typeKeys("echo hi\r")
	at = term.waitFor(at, "echo hi\r\nhi\r\n") // the remote echo of what was typed, then the output

	term.typeKeys("stty size\r")
	at = term.waitFor(at, "24 80\r\n")

	// Ctrl-C is a key, not a signal to insien: it interrupts the remote sleep and the shell goes on
	term.typeKeys("sleep 60\r")
	at = term.waitFor(at, "sleep 60\r\n")
	time.Sleep(300 * time.Millisecond)
	term.typeKeys("\x03")
	at = term.waitFor(at, "# ")
	term.typeKeys("echo after $((6*7))\r")
	at = term.waitFor(at, "after 42\r\n")

	// a resized window reaches the remote terminal (SIGWINCH); the resize is asynchronous, so ask
	// until it shows
	if err := pty.Setsize(term.ptmx, &pty.Winsize{Rows: 40, Cols: 100}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		term.typeKeys("stty size\r")
		next := term.waitFor(at, "# ")
		term.mu.Lock()
		shown := term.screen.String()[at:next]
		term.mu.Unlock()
		at = next
		if strings.Contains(shown, "40 100\r\n") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the resize stty says %q", shown)
		}
		time.Sleep(100 * time.Millisecond)
	}

	term.typeKeys("exit\r")
	if code := term.exitCode(); code != 0 {
		t.Errorf("insien shell exited %d after exit", code)
	}
	after := term.termios()
	if after.Lflag != before.Lflag || after.Iflag != before.Iflag || after.Oflag != before.Oflag || after.Cflag != before.Cflag {
		t.Errorf("the terminal was not restored:\nbefore %+v\nafter  %+v", before, after)
	}

	t.Run("the remote command's exit code", func(t *testing.T) {
		term := startTerminal(t, bin, env, "shell", sb, "--", "sh", "-c", "exit 7")
		if code := term.exitCode(); code != 7 {
			t.Errorf("insien shell -- sh -c 'exit 7' exited %d", code)
		}
	})
	t.Run("without a terminal, input is piped and its end ends the shell", func(t *testing.T) {
		// three times: input that arrives before the remote shell is ready must end it too
		for range 3 {
			var stdout, stderr timedWriter
			exited := make(chan int, 1)
			go func() { exited <- run([]string{"shell", sb}, strings.NewReader("echo pi''ped\n"), &stdout, &stderr) }()
			select {
			case code := <-exited:
				if code != 0 || !strings.Contains(stdout.String(), "piped\r\n") {
					t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
				}
			case <-time.After(20 * time.Second):
				t.Fatalf("the shell did not end with its input; it printed %q", stdout.String())
			}
		}
	})
	t.Run("login prompts for the key without echoing it", func(t *testing.T) {
		config := t.TempDir()
		env := []string{"XDG_CONFIG_HOME=" + config, "INSIEN_API_KEY=", "INSIEN_API_URL="}
		term := startTerminal(t, bin, env, "login", "--api-url", e.svc.URL)
		term.waitFor(0, "API key: ")
		if st := term.termios(); st.Lflag&unix.ECHO != 0 {
			t.Errorf("the prompt echoes: lflag %#x", st.Lflag)
		}
		term.typeKeys(e.svc.APIKey + "\r")
		if code := term.exitCode(); code != 0 {
			t.Fatalf("login exited %d: %q", code, term.finalScreen())
		}
		screen := term.finalScreen()
		if strings.Contains(screen, e.svc.APIKey) || !strings.Contains(screen, "Logged in") {
			t.Errorf("the terminal shows %q", screen)
		}
		if info, err := os.Stat(filepath.Join(config, "insien", "config.json")); err != nil || info.Mode().Perm() != 0o600 {
			t.Errorf("the stored login: %v %v", info, err)
		}
		if st := term.termios(); st.Lflag&unix.ECHO == 0 {
			t.Errorf("echo was not restored: lflag %#x", st.Lflag)
		}
	})
	t.Run("a spinner while waiting, on a terminal", func(t *testing.T) {
		term := startTerminal(t, bin, env, "sandbox", "create", "-q")
		if code := term.exitCode(); code != 0 {
			t.Fatalf("create exited %d: %q", code, term.finalScreen())
		}
		screen := term.finalScreen()
		lines := strings.Split(strings.TrimSpace(screen), "\n")
		id := strings.TrimSpace(lines[len(lines)-1])
		id = id[strings.LastIndex(id, "\x1b[K")+len("\x1b[K"):]
		if r := insien(t, "", "sandbox", "rm", "--api-url", e.svc.URL, "--api-key", e.svc.APIKey, id); r.code != 0 {
			t.Errorf("removing %q: %s", id, r.stderr)
		}
		if !strings.Contains(screen, "Creating sandbox") {
			t.Errorf("no spinner on the terminal: %q", screen)
		}
	})
}
