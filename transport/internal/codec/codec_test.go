package codec

import (
	"reflect"
	"testing"

	"github.com/heraldhub/herald/transport"
)

func TestRoundTrip(t *testing.T) {
	u := &transport.Update{ID: "urn:uuid:1", Type: "t", Retry: 300, Private: true,
		Topics: []string{"https://example.com/a", ""}, Data: `{"n":1}`}
	enc := Encode(u)
	if s := EncodeString(u); s != string(enc) {
		t.Fatalf("EncodeString = %q, Encode = %q", s, enc)
	}
	got, err := Decode(42, string(enc))
	if err != nil {
		t.Fatal(err)
	}
	want := *u
	want.Seq = 42
	if !reflect.DeepEqual(got, &want) {
		t.Fatalf("Decode = %+v, want %+v", got, want)
	}
	if id, ok := DecodeID(string(enc)); !ok || id != u.ID {
		t.Fatalf("DecodeID = %q, %v", id, ok)
	}
	// Every cut inside the header and topics is truncated; Data runs to the end.
	for i := range len(enc) - len(u.Data) {
		if _, err := Decode(1, string(enc[:i])); err == nil {
			t.Fatalf("decode of %d/%d bytes succeeded", i, len(enc))
		}
	}
	if _, err := Decode(1, "\x02\x00"); err == nil {
		t.Fatal("decode of an unknown version succeeded")
	}
	sys := transport.Update{Seq: 7, ID: "s", Topics: []string{"t"}, Private: true, System: true}
	if got, err := Decode(7, EncodeString(&sys)); err != nil || !reflect.DeepEqual(*got, sys) {
		t.Fatalf("round trip of a system update = %+v, %v", got, err)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(string(Encode(&transport.Update{ID: "f", Topics: []string{"t"}, Data: "d"})))
	f.Fuzz(func(t *testing.T, s string) {
		u, err := Decode(1, s)
		if err != nil {
			return
		}
		again, err := Decode(1, string(Encode(u)))
		if err != nil || !reflect.DeepEqual(u, again) {
			t.Fatalf("re-decode = %+v, %v; want %+v", again, err, u)
		}
		_, _ = DecodeID(s)
	})
}
