package report

import (
	"bytes"
	"io"
	"testing"

	"github.com/conclave/conclave/eventlog"
)

// FuzzRender renders any log eventlog.Read accepts: the report, with the
// checkers it runs, never fails on a log from outside (a file may hold
// anything).
func FuzzRender(f *testing.F) {
	f.Add([]byte(`{"ts":"2026-11-23T18:40:00Z","node":"control","inc":0,"lc":1,"ev":"proc_start","peer":0}
{"ts":"2026-11-23T18:40:00.01Z","node":"peer-0","inc":1,"lc":2,"ev":"start","id":0,"n":2}
{"ts":"2026-11-23T18:40:00.02Z","node":"peer-0","inc":1,"lc":3,"ev":"leader_change","leader":0,"prev":-1,"alive":[0]}
{"ts":"2026-11-23T18:40:00.03Z","node":"control","inc":0,"lc":4,"ev":"proc_kill","peer":1}
`))
	f.Add([]byte(`{"ts":"2026-11-23T18:40:00Z","node":"m0","inc":1,"lc":1,"ev":"view","member":"m0.1","view":"1@m0.1","members":["m0.1"],"flushed":false}
{"ts":"2026-11-23T18:40:00.1Z","node":"m0","inc":1,"lc":2,"ev":"deliver","member":"m0.1","view":"1@m0.1","from":"m0.1","seq":1,"order":1,"msg":"a"}
{"ts":"2026-11-23T18:40:00.2Z","node":"m1","inc":1,"lc":3,"ev":"suspect","member":"m1.1","of":"m0.1","cause":"silence"}
`))
	f.Add([]byte(`{"ts":"2026-11-23T18:40:00Z","node":"dir-0","inc":1,"lc":1,"ev":"dir_role","role":"leader","term":1,"leader":0}
{"ts":"2026-11-23T18:40:00.1Z","node":"sub","inc":1,"lc":2,"ev":"ps_subscribe","topic":"t","qos":"total","group":"g0","member":"s.1","since":""}
{"ts":"2026-11-23T18:40:00.2Z","node":"sub","inc":1,"lc":3,"ev":"ps_deliver","topic":"t","group":"g0","member":"s.1","view":"1@p","from":"p.1","seq":1,"order":1}
{"ts":"2026-11-23T18:40:00.3Z","node":"pub","inc":1,"lc":4,"ev":"ps_move","topic":"t","group":"g1","prev":"g0","moves":1,"kind":"publisher","result":"ok"}
{"ts":"2026-11-23T18:40:00.4Z","node":"control","inc":0,"lc":5,"ev":"step","name":"kill pub"}
{"ts":"2026-11-23T18:40:00.4Z","node":"control","inc":0,"lc":6,"ev":"proc_kill","peer":3}
`))
	f.Add([]byte(`{"ts":"2026-11-23T18:40:00Z","node":"control","inc":0,"lc":1,"ev":"proc_start","peer":0,"proc":"pub"}
{"ts":"2026-11-23T18:40:00.1Z","node":"pub","inc":1,"lc":2,"ev":"dir_call","client":"pub","call":1,"op":"announce","topic":"t","qos":"total","seq":5}
{"ts":"2026-11-23T18:40:00.2Z","node":"pub","inc":1,"lc":3,"ev":"dir_return","client":"pub","call":1,"op":"announce","topic":"t","result":"ok","qos":"total","group":"g0","moves":0}
{"ts":"2026-11-23T18:40:00.3Z","node":"sub","inc":1,"lc":4,"ev":"dir_return","client":"sub","call":1,"op":"lookup","topic":"t","result":"ok","qos":"total","group":"g1","moves":1}
{"ts":"2026-11-23T18:40:00.4Z","node":"sub","inc":1,"lc":5,"ev":"dir_call","client":"sub","call":1,"op":"lookup","topic":"t"}
{"ts":"2026-11-23T18:40:00.5Z","node":"sub","inc":1,"lc":6,"ev":"dir_call","client":"sub","call":2,"op":"subscribe","topic":"t"}
{"ts":"2026-11-23T18:40:00.6Z","node":"sub","inc":1,"lc":7,"ev":"dir_return","client":"sub","call":2,"op":"subscribe","topic":"t","result":"unknown-topic"}
{"ts":"2026-11-23T18:40:00.7Z","node":"sub","inc":1,"lc":8,"ev":"ps_stats","topic":"t","delivered":3,"filtered":2,"final":true}
{"ts":"2026-11-23T18:40:00.8Z","node":"control","inc":0,"lc":9,"ev":"proc_kill","peer":0,"proc":"pub"}
`))
	f.Add([]byte(`{"ts":"x","node":"","ev":1}` + "\n{}\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		events, _, _ := eventlog.Read(bytes.NewReader(data))
		eventlog.Sort(events)
		if err := Render(io.Discard, "fuzz", events); err != nil {
			t.Fatal(err)
		}
	})
}
