package layers

import (
	"errors"
	"strings"
	"testing"

	"github.com/conclave/conclave/stack"
)

func TestShippedStacksParse(t *testing.T) {
	for _, name := range []string{"vsync", "total"} {
		d, err := Load(name)
		if err != nil {
			t.Fatal(err)
		}
		if d.Name != name {
			t.Errorf("stack %s is called %q", name, d.Name)
		}
		if _, err := Registry().Build(d, stack.Member{ID: "a", Addr: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	if got := d(t, "total").Layers[0].Params.Duration("suspect-after").String(); got != "500ms" {
		t.Errorf("suspect-after %s", got)
	}
}

func d(t *testing.T, name string) *stack.Description {
	t.Helper()
	x, err := Load(name)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func TestBadDescriptions(t *testing.T) {
	for _, c := range []struct{ xml, want string }{
		{`<stack name="x"><layer kind="detect"/><layer kind="nope"/></stack>`, `f.xml:1: unknown layer kind "nope"`},
		{"<stack name=\"x\">\n<layer kind=\"detect\" heartbeat=\"fast\"/></stack>", `f.xml:2: layer "detect": heartbeat="fast" is not a duration`},
		{`<stack name="x"><layer kind="detect" color="red"/></stack>`, `has no parameter "color"`},
		{`<stack name="x"><layer kind="detect"/><layer kind="total"/></stack>`, `layer "total" needs a "vsync" layer below it`},
		{`<stack name="x"><layer kind="detect"/><layer kind="membership"/><layer kind="vsync" window="0"/></stack>`, `window=0 is out of range`},
		{`<stack name="x"><layer kind="detect"/>`, `f.xml:1: unexpected EOF`},
		{`<stack><layer kind="detect"/></stack>`, `needs a name`},
		{`<other/>`, `root element must be <stack>`},
		{``, `no <stack> element`},
		{`<stack name="x"></stack>`, `has no layers`},
		{`<stack name="x"><layer kind="detect"/><layer kind="detect"/></stack>`, `may appear only once`},
		{"<stack name=\"x\"><layer kind=\"detect\"/><layer kind=\"membership\"/><layer kind=\"vsync\"/>\n<layer kind=\"bundle\"/><layer kind=\"total\"/></stack>",
			`f.xml:2: layer "bundle" must be the topmost layer`},
		{"<stack name=\"x\">\n<layer kind=\"detect\" heartbeat=\"1s\" suspect-after=\"500ms\"/></stack>",
			`f.xml:2: layer "detect": suspect-after (500ms) must be longer than the heartbeat interval (1s)`},
		{`<stack name="x"><layer kind="detect" heartbeat="1s"/></stack>`, `suspect-after (500ms) must be longer than the heartbeat interval (1s)`},
	} {
		_, err := Registry().Parse("f.xml", []byte(c.xml))
		var se *stack.Error
		if err == nil || !errors.As(err, &se) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v, want an error containing %q", c.xml, err, c.want)
		}
	}
}

func TestUserStack(t *testing.T) {
	x := `<stack name="fast-total"><layer kind="detect" heartbeat="20ms" suspect-after="100ms"/>
<layer kind="membership"/><layer kind="vsync" window="64"/><layer kind="total"/></stack>`
	desc, err := Registry().Parse("fast.xml", []byte(x))
	if err != nil {
		t.Fatal(err)
	}
	if w := desc.Layers[2].Params.Int("window"); w != 64 {
		t.Errorf("window %d", w)
	}
}

func FuzzParse(f *testing.F) {
	for _, name := range Shipped() {
		b, _ := ShippedXML(name)
		f.Add(b)
	}
	f.Add([]byte(`<stack name="x"><layer kind="detect" heartbeat="-1s"/></stack>`))
	reg := Registry()
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := reg.Parse("fuzz.xml", b)
		if err != nil {
			return
		}
		if _, err := reg.Build(d, stack.Member{ID: "a", Addr: "x"}); err != nil {
			t.Fatalf("parsed but does not build: %v", err)
		}
	})
}

func TestLoadReadsNoFiles(t *testing.T) {
	for _, c := range []struct{ name, want string }{
		{"fifo", `no stack "fifo": the shipped stacks are total, vsync`},
		{"vsync.bak", `no stack "vsync.bak"`},
		{"mine.xml", `stack "mine.xml" is a file`},
		{"dir/vsync", `stack "dir/vsync" is a file`},
	} {
		if _, err := Load(c.name); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Load(%q): %v, want an error containing %q", c.name, err, c.want)
		}
	}
}

func TestRead(t *testing.T) {
	x := `<stack name="mine"><layer kind="detect"/></stack>`
	d, err := Read("mine.xml", strings.NewReader(x))
	if err != nil || d.Name != "mine" || d.File != "mine.xml" {
		t.Fatalf("Read: %v, %v", d, err)
	}
	// An endless description is refused after stack.MaxDescription+1 bytes.
	r := &endless{}
	_, err = Read("big.xml", r)
	want := "big.xml: description is over the limit of 65536 bytes"
	if err == nil || err.Error() != want {
		t.Errorf("Read of an endless file: %v, want %q", err, want)
	}
	if r.n > stack.MaxDescription+512 {
		t.Errorf("Read read %d bytes of an endless file, want about %d", r.n, stack.MaxDescription+1)
	}
}

// endless is a reader of spaces that never ends; n counts the bytes read.
type endless struct{ n int }

func (e *endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	e.n += len(p)
	return len(p), nil
}

func TestDefaults(t *testing.T) {
	x := `<stack name="bare"><layer kind="detect"/><layer kind="membership"/><layer kind="vsync"/></stack>`
	desc, err := Registry().Parse("bare.xml", []byte(x))
	if err != nil {
		t.Fatal(err)
	}
	detect, membership, vsync := desc.Layers[0].Params, desc.Layers[1].Params, desc.Layers[2].Params
	if got := detect.Duration("heartbeat"); got != DefaultHeartbeat {
		t.Errorf("heartbeat %v, want %v", got, DefaultHeartbeat)
	}
	if got := detect.Duration("suspect-after"); got != DefaultSuspectAfter {
		t.Errorf("suspect-after %v, want %v", got, DefaultSuspectAfter)
	}
	if got := membership.Duration("retry"); got != DefaultRetry {
		t.Errorf("retry %v, want %v", got, DefaultRetry)
	}
	if got := vsync.Int("window"); got != DefaultWindow {
		t.Errorf("window %d, want %d", got, DefaultWindow)
	}
}

// TestStackHash: the same stack written twice (other attribute order,
// defaults left out, another name) has one hash; other parameters or
// layers another.
func TestStackHash(t *testing.T) {
	parse := func(x string) *stack.Description {
		t.Helper()
		d, err := Registry().Parse("x.xml", []byte(x))
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	shipped := d(t, "vsync")
	same := parse(`<stack name="mine"><layer suspect-after="500ms" kind="detect"/>
		<layer kind="membership"/><layer kind="vsync" gap-timeout="1s"/><layer kind="bundle"/></stack>`)
	if shipped.Hash() != same.Hash() || shipped.Canonical() != same.Canonical() {
		t.Errorf("one stack written twice: %s and %s", shipped.Canonical(), same.Canonical())
	}
	if same.ID() != "mine#"+shipped.Hash() {
		t.Errorf("ID %s", same.ID())
	}
	other := parse(`<stack name="vsync"><layer kind="detect"/><layer kind="membership"/><layer kind="vsync" window="64"/></stack>`)
	if other.Hash() == shipped.Hash() || d(t, "total").Hash() == shipped.Hash() {
		t.Error("different stacks with one hash")
	}
	want := "detect(heartbeat=100ms,suspect-after=500ms) membership(retry=200ms) vsync(gap-timeout=1s,window=1024) bundle(max=30720)"
	if got := shipped.Canonical(); got != want {
		t.Errorf("canonical text %q, want %q", got, want)
	}
}
