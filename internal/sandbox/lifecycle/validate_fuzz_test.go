package lifecycle

import (
	"bytes"
	"math"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/insien/orchestrator/internal/platform/apierror"
	"github.com/insien/orchestrator/internal/platform/config"
	"github.com/insien/orchestrator/internal/runtimes"
)

// The validators are the only gate between a request and the engine: whatever they accept must be
// something the engine enforces (issue 8: cpu 1e-9 became "no CPU limit"), and whatever they refuse
// must be a 400 naming the field, in a message a client can read.

func fuzzConfig() config.Sandbox { return config.Default().Sandbox }

// refused checks that err is the one validation error shape, on field.
func refused(t *testing.T, err error, field string) {
	t.Helper()
	e, ok := apierror.As(err)
	if !ok || e.Status != http.StatusBadRequest || e.Code != "validation_failed" || (field != "" && e.Field != field) || e.Field == "" {
		t.Fatalf("error %v (%#v), want a 400 validation_failed on field %q", err, e, field)
	}
	if !utf8.ValidString(e.Message) {
		t.Fatalf("message is not UTF-8: %q", e.Message)
	}
}

// enforced is what the Docker engine makes of a CPU limit: the CFS quota per 100 ms period in µs.
func cfsQuota(cpu float64) int64 { return int64(math.Round(cpu*1e9)) * 100_000 / 1_000_000_000 }

func FuzzValidCPU(f *testing.F) {
	for _, cpu := range []float64{1e-9, 1e-5, 0.005, 0.0099, 0.00999999999, 0.01, 0.0105, 0.1234, 0.333, 0.5, 1, 4,
		4.0000001, 64, 0, -1, math.NaN(), math.Inf(1), math.Inf(-1), math.SmallestNonzeroFloat64, math.MaxFloat64} {
		f.Add(cpu)
	}
	cfg := fuzzConfig()
	f.Fuzz(func(t *testing.T, cpu float64) {
		got, err := validCPU(cpu, cfg.MaxCPU)
		if err != nil {
			refused(t, err, "cpu")
			return
		}
		if !(got >= runtimes.MinCPU && got <= cfg.MaxCPU) {
			t.Fatalf("validCPU(%g) = %g, outside [%g, %g]", cpu, got, runtimes.MinCPU, cfg.MaxCPU)
		}
		if q := cfsQuota(got); q < 1000 {
			t.Fatalf("validCPU(%g) = %g: a CFS quota of %d µs, under the kernel's 1000 µs minimum", cpu, got, q)
		}
		if steps := got / runtimes.CPUStep; math.Abs(steps-math.Round(steps)) > 1e-9 {
			t.Fatalf("validCPU(%g) = %g, not a whole number of millicores", cpu, got)
		}
		if math.Abs(got-cpu) > runtimes.CPUStep/1000 {
			t.Fatalf("validCPU(%g) = %g: rounded by more than noise", cpu, got)
		}
	})
}

func FuzzValidateEnv(f *testing.F) {
	f.Add("API_TOKEN", "hunter2")
	f.Add("1BAD", "x")
	f.Add("BAD-NAME", "x")
	f.Add("A=B", "x")
	f.Add("", "x")
	f.Add("NUL", "a\x00b")
	f.Add("BIG", strings.Repeat("x", 70000))
	f.Add("UTF", "\xff\xfe")
	f.Add("_ok", "é")
	f.Fuzz(func(t *testing.T, name, value string) {
		err := validateEnv(map[string]string{name: value}, fuzzConfig().MaxEnvBytes)
		if err != nil {
			refused(t, err, "env")
			return
		}
		// What the Docker driver (envList) and the exec API need: KEY=VALUE without ambiguity.
		if name == "" || strings.ContainsAny(name, "=\x00") || strings.ContainsRune(value, 0) || !utf8.ValidString(value) {
			t.Fatalf("accepted env %q=%q", name, value)
		}
	})
}

func FuzzValidateMetadata(f *testing.F) {
	f.Add("team", "ml")
	f.Add("", "v")
	f.Add(strings.Repeat("k", 65), "v")
	f.Add("k", strings.Repeat("v", 513))
	f.Add("k\x00", "v")
	f.Add("k", "\xff")
	f.Add("ключ", "значение")
	f.Fuzz(func(t *testing.T, key, value string) {
		err := validateMetadata(map[string]string{key: value})
		if err != nil {
			refused(t, err, "metadata")
			return
		}
		if key == "" || utf8.RuneCountInString(key) > maxMetadataKeyLen || utf8.RuneCountInString(value) > maxMetadataValueLen ||
			!utf8.ValidString(key+value) || strings.ContainsRune(key+value, 0) {
			t.Fatalf("accepted metadata %q=%q", key, value)
		}
	})
}

// FuzzValidateCommand takes the argv joined with NUL-free separators: \x1e splits arguments.
func FuzzValidateCommand(f *testing.F) {
	f.Add("sh\x1e-c\x1esleep 1; exit 3")
	f.Add("")
	f.Add("\x1e-c")
	f.Add("a\x00b")
	f.Add("\xff")
	f.Add(strings.Repeat("a\x1e", 300))
	f.Fuzz(func(t *testing.T, joined string) {
		var cmd []string
		if joined != "" {
			cmd = strings.Split(joined, "\x1e")
		}
		err := validateCommand(cmd)
		if err != nil {
			refused(t, err, "command")
			return
		}
		if len(cmd) > maxCommandArgs || (len(cmd) > 0 && cmd[0] == "") {
			t.Fatalf("accepted command %q", cmd)
		}
		for _, arg := range cmd {
			if strings.ContainsRune(arg, 0) || !utf8.ValidString(arg) {
				t.Fatalf("accepted argument %q", arg)
			}
		}
	})
}

// FuzzValidate drives the whole create validation and the Idempotency-Key fingerprint.
func FuzzValidate(f *testing.F) {
	f.Add("", "sh\x1e-c\x1esleep 1", "TOKEN", "v", "team", "ml", 300, 0.5, int64(128), true, "key-1")
	f.Add("alpine:latest", "", "", "", "", "", 0, 1e-9, int64(1), false, "")
	f.Add("", "", "1BAD", "x", "", "", 86401, 1e-5, int64(1<<40), false, "k\x00")
	f.Add("", "", "A", "x", "k", "v", -1, math.NaN(), int64(-6), true, strings.Repeat("k", 256))
	f.Add("insien/sandbox:busybox", "", "", "", "", "", 1, 0.01, int64(6), true, "ok")
	f.Add("", "", "", "", "", "", 300, 1e-9, int64(128), true, "")  // issue 8: no CPU limit at all
	f.Add("", "", "", "", "", "", 300, 0.005, int64(128), true, "") // issue 8: runc's error, a 502
	cfg := fuzzConfig()
	f.Fuzz(func(t *testing.T, image, joined, envName, envValue, metaKey, metaValue string,
		timeout int, cpu float64, memory int64, autoExtend bool, key string) {
		in := CreateInput{Image: image, TimeoutSeconds: &timeout, CPU: &cpu, MemoryMB: &memory, AutoExtend: &autoExtend, IdempotencyKey: key}
		if joined != "" {
			in.Command = strings.Split(joined, "\x1e")
		}
		if envName != "" {
			in.Env = map[string]string{envName: envValue}
		}
		if metaKey != "" {
			in.Metadata = map[string]string{metaKey: metaValue}
		}
		sp, err := validate(in, cfg, true)
		if err != nil {
			refused(t, err, "")
			return
		}
		if cfsQuota(sp.cpu) < 1000 || sp.cpu > cfg.MaxCPU {
			t.Fatalf("accepted cpu %g", sp.cpu)
		}
		if sp.memoryMB < runtimes.MinMemoryMB || sp.memoryMB > cfg.MaxMemoryMB {
			t.Fatalf("accepted memory_mb %d", sp.memoryMB)
		}
		if sp.timeout <= 0 || sp.timeout > cfg.MaxLifetime {
			t.Fatalf("accepted timeout %s", sp.timeout)
		}
		fp := in.fingerprint()
		if len(fp) != 32 || !bytes.Equal(fp, in.fingerprint()) {
			t.Fatalf("fingerprint %x is not a stable SHA-256", fp)
		}
		// Absent and empty lists are the same request; another value is another request.
		same := in
		if same.Command == nil {
			same.Command = []string{}
		}
		other := in
		other.AutoExtend = new(!autoExtend)
		if !bytes.Equal(fp, same.fingerprint()) || bytes.Equal(fp, other.fingerprint()) {
			t.Fatalf("fingerprint does not tell requests apart as it should")
		}
	})
}
