package testenv

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/insien/orchestrator/internal/runtimes"
)

// Docker is a client of the test engine, for assertions on containers.
func Docker(t testing.TB) *client.Client {
	t.Helper()
	cli, err := client.New(client.WithHost(Require(t, EnvDockerHost)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// Containers lists the containers (running or not) of a runtime cluster, by name.
func Containers(t testing.TB, cli *client.Client, cluster string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	f := client.Filters{}
	f.Add("label", runtimes.LabelCluster+"="+cluster)
	res, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		t.Fatalf("listing containers: %v", err)
	}
	names := make([]string, 0, len(res.Items))
	for _, c := range res.Items {
		if len(c.Names) > 0 {
			names = append(names, c.Names[0][1:])
		}
	}
	return names
}

// RemoveCluster force-removes every container of a cluster when the test ends, so a failing test
// leaves nothing running.
func RemoveCluster(t testing.TB, cluster string) {
	t.Helper()
	cli := Docker(t)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		for _, name := range Containers(t, cli, cluster) {
			_, _ = cli.ContainerRemove(ctx, name, client.ContainerRemoveOptions{Force: true})
		}
	})
}

// Processes maps pid to command line for every process in a container, as the engine lists them
// from the host (so listing adds no process of its own inside the container).
func Processes(t testing.TB, container string) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	top, err := Docker(t).ContainerTop(ctx, container, client.ContainerTopOptions{})
	if err != nil {
		t.Fatalf("top %s: %v", container, err)
	}
	pid, cmd := slices.Index(top.Titles, "PID"), slices.Index(top.Titles, "CMD")
	if pid < 0 || cmd < 0 {
		t.Fatalf("top %s: no PID or CMD column in %v", container, top.Titles)
	}
	procs := make(map[string]string, len(top.Processes))
	for _, p := range top.Processes {
		procs[p[pid]] = p[cmd]
	}
	return procs
}
