package main

import (
	"bufio"
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/conclave/conclave/check"
	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/launch"
)

// TestPublishSubscribeProcesses runs three directory replicas, a
// subscriber waiting for a topic nobody announced yet, and a publisher of
// it, as processes: the publisher's line reaches the subscriber.
func TestPublishSubscribeProcesses(t *testing.T) {
	dir := t.TempDir()
	c, _ := startDirectory(t, dir)
	key := filepath.Join(dir, launch.KeyFileName)
	addrs := strings.Join(c.Addrs(), ",")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// The publisher first, so that the subscriber finds the topic.
	pub := exec.CommandContext(ctx, conclaveBinary(t), "publish", "--directory", addrs, "--topic", "news",
		"--qos", "total", "--wait-members", "1", "--name", "pub", "--key-file", key, "--log-dir", dir)
	pub.Stdin = strings.NewReader("hello subscribers\n")
	pubStdout, err := pub.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var pubErr bytes.Buffer
	pub.Stderr = &pubErr
	if err := pub.Start(); err != nil {
		t.Fatal(err)
	}
	first, err := bufio.NewReader(pubStdout).ReadString('\n')
	if err != nil {
		t.Fatalf("publish: %v\n%s", err, pubErr.String())
	}
	if !strings.HasPrefix(first, "topic news: QoS total, group g") {
		t.Errorf("the publisher did not say its QoS and group: %q", first)
	}
	sub := exec.CommandContext(ctx, conclaveBinary(t), "subscribe", "--directory", addrs, "--topic", "news",
		"--wait", "--count", "1", "--name", "sub", "--key-file", key, "--log-dir", dir)
	var subOut, subErr bytes.Buffer
	sub.Stdout, sub.Stderr = &subOut, &subErr
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	if err := pub.Wait(); err != nil {
		t.Fatalf("publish: %v\n%s", err, pubErr.String())
	}
	if err := sub.Wait(); err != nil {
		t.Fatalf("subscribe: %v\nstdout:\n%s\nstderr:\n%s", err, subOut.String(), subErr.String())
	}
	out := subOut.String()
	if !strings.Contains(out, "topic news: QoS total, group g") || !strings.Contains(out, "news> hello subscribers\n") {
		t.Errorf("subscriber's output:\n%s\nstderr:\n%s", out, subErr.String())
	}
	if !strings.Contains(subErr.String(), "topic news: 1 delivered, 0 filtered") {
		t.Errorf("subscriber's stats:\n%s", subErr.String())
	}
	h, _, err := eventlog.ReadFile(filepath.Join(dir, "sub.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	delivered := 0
	for _, e := range h {
		if e.Ev == eventlog.PSDeliver && e.Str(eventlog.FieldTopic) == "news" {
			delivered++
		}
	}
	if delivered != 1 {
		t.Errorf("the subscriber's log has %d deliveries of news, want 1", delivered)
	}
	// Both clients' logs (the replicas' too, which the checkers skip):
	// the publisher's acknowledged line must be the subscriber's.
	all, _, err := eventlog.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	published := 0
	for _, e := range all {
		if e.Ev == eventlog.PSPublish && e.Str(eventlog.FieldResult) == "ok" {
			published++
		}
	}
	if published != 1 {
		t.Errorf("the logs have %d acknowledged publishes, want 1", published)
	}
	for _, v := range check.PubSub(all, check.PubSubOptions{}) {
		t.Error(v)
	}
}
