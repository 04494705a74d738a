package testenv

import (
	"context"
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
