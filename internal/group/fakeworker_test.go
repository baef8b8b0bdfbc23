package group

// The fake worker (package fakeworker) is this test binary, re-executed as
// the "python" of a Spec: TestMain runs it when fakeworker.WorkerEnv is set.

import (
	"sync"
	"testing"

	"github.com/whiskserver/whisk/internal/proc"
	"github.com/whiskserver/whisk/internal/whisktest/fakeworker"
)

func TestMain(m *testing.M) { fakeworker.TestMain(m) }

// fakeSpawner is the Spawner every test shares: its thread lives as long
// as the test process, like whisk's.
var fakeSpawner = sync.OnceValue(proc.NewSpawner)
