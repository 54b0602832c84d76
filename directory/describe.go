package directory

// Describe returns the event-log fields of a command applied with result
// (client, seq, op, topic or group, qos, and the result's code). Bytes
// that do not decode are described as such.
func Describe(cmd, result []byte) map[string]any {
	f := map[string]any{}
	c, err := DecodeCommand(cmd)
	if err != nil {
		f["op"] = "undecodable"
		return f
	}
	f["client"], f["seq"] = c.Client, c.Seq
	switch op := c.Op.(type) {
	case Announce:
		f["op"], f["topic"] = "announce", op.Topic
	case Subscribe:
		f["op"], f["topic"] = "subscribe", op.Topic
	case Unsubscribe:
		f["op"], f["topic"] = "unsubscribe", op.Topic
	case Withdraw:
		f["op"], f["topic"] = "withdraw", op.Topic
	case Contacts:
		f["op"], f["group"] = "contacts", op.Group
	case AddContact:
		f["op"], f["group"] = "add-contact", op.Group
	case RemoveContact:
		f["op"], f["group"] = "remove-contact", op.Group
	case Report:
		f["op"] = "report"
	case Move:
		f["op"], f["topic"], f["group"] = "move", op.Topic, op.Group
	case MoveDone:
		f["op"], f["topic"] = "move-done", op.Topic
	}
	if r, err := DecodeResult(result); err == nil {
		f["result"] = r.Code.String()
		if r.QoS != "" {
			f["qos"] = r.QoS
		}
		if r.Group != "" {
			f["group"] = r.Group
		}
	}
	return f
}
