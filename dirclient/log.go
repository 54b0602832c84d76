package dirclient

import (
	"github.com/conclave/conclave/directory"
	"github.com/conclave/conclave/eventlog"
)

// What dir_return says of an operation that had no answer.
const resultError = "error"

// Op kinds in dir_call and dir_return besides the commands, which are
// named as in dir_apply.
const opLookup = "lookup"

// describe names a command as dir_apply does, and the topic, group and
// QoS it is about.
func describe(op directory.Op) (kind, topic, group, qos string) {
	switch op := op.(type) {
	case directory.Announce:
		return "announce", op.Topic, "", op.QoS
	case directory.Subscribe:
		return "subscribe", op.Topic, "", ""
	case directory.Unsubscribe:
		return "unsubscribe", op.Topic, "", ""
	case directory.Withdraw:
		return "withdraw", op.Topic, "", ""
	case directory.Contacts:
		return "contacts", "", op.Group, ""
	case directory.AddContact:
		return "add-contact", "", op.Group, ""
	case directory.RemoveContact:
		return "remove-contact", "", op.Group, ""
	case directory.Report:
		return "report", "", "", ""
	case directory.Move:
		return "move", op.Topic, op.Group, ""
	case directory.MoveDone:
		return "move-done", op.Topic, "", ""
	}
	return "other", "", "", ""
}

// opLog is one operation being logged: what dir_return repeats of its
// dir_call.
type opLog struct {
	c           *Client
	call        uint64
	kind, topic string
}

// logCall logs dir_call for an operation beginning now, seq being its
// command's sequence number (0 for a read); it returns nil without
// Config.Log.
func (c *Client) logCall(kind, topic, group, qos string, seq uint64) *opLog {
	if c.cfg.Log == nil {
		return nil
	}
	o := &opLog{c: c, call: c.calls.Add(1), kind: kind, topic: topic}
	kv := []any{eventlog.FieldClient, c.cfg.Name, eventlog.FieldCall, o.call, eventlog.FieldOp, kind}
	kv = appendSet(kv, eventlog.FieldTopic, topic)
	kv = appendSet(kv, eventlog.FieldGroup, group)
	kv = appendSet(kv, eventlog.FieldQoS, qos)
	if seq != 0 {
		kv = append(kv, eventlog.FieldSeq, seq)
	}
	c.cfg.Log(eventlog.DirCall, kv...)
	return o
}

// failed logs dir_return for an operation that had no answer.
func (o *opLog) failed(err error) {
	if o == nil {
		return
	}
	o.ret(resultError, "", "", 0, err)
}

// answered logs dir_return for an operation answered with the directory's
// code result and, if ok, the topic's QoS, group and moves.
func (o *opLog) answered(result, qos, group string, moves uint64) {
	if o == nil {
		return
	}
	o.ret(result, qos, group, moves, nil)
}

func (o *opLog) ret(result, qos, group string, moves uint64, err error) {
	kv := []any{eventlog.FieldClient, o.c.cfg.Name, eventlog.FieldCall, o.call, eventlog.FieldOp, o.kind}
	kv = appendSet(kv, eventlog.FieldTopic, o.topic)
	kv = append(kv, eventlog.FieldResult, result)
	kv = appendSet(kv, eventlog.FieldQoS, qos)
	kv = appendSet(kv, eventlog.FieldGroup, group)
	if group != "" {
		kv = append(kv, eventlog.FieldMoves, moves)
	}
	if err != nil {
		kv = append(kv, eventlog.FieldError, err.Error())
	}
	o.c.cfg.Log(eventlog.DirReturn, kv...)
}

// result logs the directory's answer to a command.
func (o *opLog) result(r directory.Result) {
	o.answered(r.Code.String(), r.QoS, r.Group, r.Moves)
}

func appendSet(kv []any, k, v string) []any {
	if v == "" {
		return kv
	}
	return append(kv, k, v)
}
