package api

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// BenchmarkDecodeStrict measures DecodeStrict (UTF-8 check, the key pass,
// then encoding/json), encoding/json alone (as the recall route decoded
// before the checks) and the checks alone (what they add to a request).
func BenchmarkDecodeStrict(b *testing.B) {
	bodies := map[string]string{
		"typical":     `{"user_id":424242,"k":20,"exclude":[11,12,13],"context":{"platform":"ios","locale":"en-US"}}`,
		"exclude1000": `{"user_id":424242,"k":20,"exclude":[` + strings.Repeat("1234567,", 999) + `1234567]}`,
		"context4k":   `{"user_id":424242,"context":{"tags":[` + strings.Repeat(`{"name":"music","w":1},`, 170) + `{"name":"x","w":1}]}}`,
	}
	for name, body := range bodies {
		raw := []byte(body)
		b.Run(name+"/strict", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var req RecallRequest
				if err := DecodeStrict(raw, &req); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/checks", func(b *testing.B) {
			b.ReportAllocs()
			sh := shapeOf(reflect.TypeFor[RecallRequest]())
			for b.Loop() {
				if !utf8.Valid(raw) || checkKeys(raw, sh) != nil {
					b.Fatal("refused")
				}
			}
		})
		b.Run(name+"/encoding-json", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var req RecallRequest
				dec := json.NewDecoder(bytes.NewReader(raw))
				dec.DisallowUnknownFields()
				if err := dec.Decode(&req); err != nil || dec.More() {
					b.Fatal(err)
				}
			}
		})
	}
}
