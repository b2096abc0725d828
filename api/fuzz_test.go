package api_test

import (
	"strings"
	"testing"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/api"
)

// FuzzRecallRequest: any body either decodes into a request that passes or
// fails validation with an EINVALID error, never a panic or another code,
// and the error's message names no Go type.
func FuzzRecallRequest(f *testing.F) {
	for _, s := range []string{
		`{"user_id":7}`, `{"user_id":7,"k":200,"exclude":[1,2,3],"context":{"platform":"ios"},"debug":true}`,
		`{"user_id":-1}`, `{"k":0}`, `{"user_id":7,"context":[]}`, `{"user_id":7} x`, `{`, ``, `null`, `[]`,
		`{"user_id":1e400}`, `{"user_id":7,"exclude":null}`, `{"user_id":7,"context":"` + strings.Repeat("a", 5000) + `"}`,
		`{"user_id":7,"user_id":8}`, "{\"user_id\":7,\"context\":{\"a\":\"\\ud800\"}}",
		`{"USER_ID":7}`, `{"user_id":7,"\u212a":5}`, `{"user_id":7,"context":{"a":[{"b":1,"b":2}]}}`, `[1]`, "{\"user_id\":7,\"context\":{\"a\":\"\xff\"}}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var req api.RecallRequest
		err := api.DecodeStrict(body, &req)
		if err == nil {
			_, err = req.Validate()
		}
		if err != nil && lr.ErrorCode(err) != lr.EINVALID {
			t.Fatalf("body %q: error %v has code %s, want invalid", body, err, lr.ErrorCode(err))
		}
		if err != nil && lr.ErrorMessage(err) == "internal error" {
			t.Fatalf("body %q: error without a client message: %v", body, err)
		}
		if err != nil && namesGoType(lr.ErrorMessage(err)) {
			t.Fatalf("body %q: error %q names a Go type", body, lr.ErrorMessage(err))
		}
	})
}
