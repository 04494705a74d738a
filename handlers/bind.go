package handlers

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/insien/orchestrator/internal/platform/apierror"
)

// bindOptionalJSON is bindJSON for bodies that may be left out entirely (all fields optional).
func bindOptionalJSON(c *gin.Context, dst any) error {
	if c.Request.ContentLength == 0 {
		return nil
	}
	return bindJSON(c, dst)
}

// bindJSON decodes a JSON object body strictly: unknown fields and trailing data are errors, and
// each failure names what is wrong in the API's terms (JSON types and field names, never Go's).
// The body is already bounded by the body limit middleware.
func bindJSON(c *gin.Context, dst any) error {
	if ct := c.ContentType(); ct != "" && ct != "application/json" {
		return apierror.New(http.StatusUnsupportedMediaType, "unsupported_media_type", "send the body as application/json")
	}
	body, err := io.ReadAll(c.Request.Body)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return err
		}
		return apierror.BadRequest("invalid_json", "the request body could not be read").WithCause(err)
	}
	return decodeJSON(body, dst)
}

// decodeJSON is bindJSON's decoding step: body into dst, a pointer to a request struct.
func decodeJSON(body []byte, dst any) error {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 {
		return apierror.BadRequest("invalid_json", "the request body is empty; send a JSON object")
	}
	if trimmed[0] != '{' && json.Valid(trimmed) {
		return notAnObject()
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.DisallowUnknownFields()
	err := dec.Decode(dst)
	if err == nil {
		if _, trailing := dec.Token(); trailing != io.EOF {
			return apierror.BadRequest("invalid_json", "the request body has data after the JSON object; send exactly one object")
		}
		return nil
	}
	var syntaxErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntaxErr):
		return apierror.BadRequest("invalid_json", "the request body is not valid JSON (error at byte %d)", syntaxErr.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return apierror.BadRequest("invalid_json", "the request body ends in the middle of the JSON object")
	case errors.As(err, &typeErr):
		return typeMismatch(reflect.TypeOf(dst), typeErr)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		// encoding/json has no error type for this; its message quotes the key with %q.
		quoted := strings.TrimPrefix(err.Error(), "json: unknown field ")
		field, uerr := strconv.Unquote(quoted)
		if uerr != nil {
			field = quoted
		}
		return apierror.Invalid(field, "unknown field %q", field)
	}
	// A field's own decoder refused its value (time.Time does so for "tomorrow"): encoding/json
	// does not say which field, so find it by decoding each field alone.
	if field, t, ok := failingField(trimmed, reflect.TypeOf(dst)); ok {
		return apierror.Invalid(field, "%s must be %s", field, describe(t))
	}
	return apierror.BadRequest("invalid_json", "the request body does not match the expected JSON object")
}

func notAnObject() error {
	return apierror.BadRequest("invalid_json", "the request body must be a JSON object")
}

// typeMismatch explains a JSON value of the wrong type, naming the request field.
func typeMismatch(dst reflect.Type, typeErr *json.UnmarshalTypeError) error {
	if typeErr.Field == "" {
		return notAnObject()
	}
	// Field is a dotted path of JSON names; elements of arrays and maps are not part of it, so
	// the deepest struct field on the path is what the message describes ("metadata must be an
	// object of strings" for {"metadata":{"a":1}}).
	name, t := resolveField(dst, typeErr.Field)
	if number, ok := strings.CutPrefix(typeErr.Value, "number "); ok && isNumber(t) {
		return numberMismatch(name, t, number)
	}
	return apierror.Invalid(name, "%s must be %s", name, describe(t))
}

// numberMismatch explains a JSON number that does not fit a numeric field.
func numberMismatch(name string, t reflect.Type, number string) error {
	t = deref(t)
	value, err := strconv.ParseFloat(number, 64)
	switch {
	case isInteger(t) && err == nil && value != float64(int64(value)) && value > -1e18 && value < 1e18:
		return apierror.Invalid(name, "%s must be %s", name, describe(t))
	case isUnsigned(t) && err == nil && value < 0:
		return apierror.Invalid(name, "%s must be %s", name, describe(t))
	}
	return apierror.Invalid(name, "%s is out of range", name)
}

// resolveField follows a dotted JSON path through struct fields, returning the longest prefix
// that names a struct field and that field's type.
func resolveField(t reflect.Type, path string) (string, reflect.Type) {
	var name []string
	current := t
	for _, segment := range strings.Split(path, ".") {
		field, ok := jsonField(deref(current), segment)
		if !ok {
			break
		}
		name = append(name, segment)
		current = field.Type
	}
	if len(name) == 0 {
		return path, nil
	}
	return strings.Join(name, "."), current
}

// jsonField finds the struct field encoding/json would fill from key name.
func jsonField(t reflect.Type, name string) (reflect.StructField, bool) {
	if t == nil || t.Kind() != reflect.Struct {
		return reflect.StructField{}, false
	}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		if strings.EqualFold(jsonName(f), name) {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func jsonName(f reflect.StructField) string {
	tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	if tag == "" {
		return f.Name
	}
	return tag
}

// failingField decodes each member of the body alone into its field's type and returns the
// first field that refuses its value.
func failingField(body []byte, dst reflect.Type) (string, reflect.Type, bool) {
	var members map[string]json.RawMessage
	if json.Unmarshal(body, &members) != nil {
		return "", nil, false
	}
	t := deref(dst)
	if t.Kind() != reflect.Struct {
		return "", nil, false
	}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name := jsonName(f)
		for key, raw := range members {
			if !strings.EqualFold(key, name) {
				continue
			}
			if json.Unmarshal(raw, reflect.New(f.Type).Interface()) != nil {
				return name, f.Type, true
			}
		}
	}
	return "", nil, false
}

var (
	timeType        = reflect.TypeFor[time.Time]()
	unmarshalerType = reflect.TypeFor[json.Unmarshaler]()
	textType        = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// describe names the JSON a Go type accepts, with an article: "an integer", "an array of
// strings", "an object of strings".
func describe(t reflect.Type) string { return noun(t, false) }

// noun names the JSON a Go type accepts: one (with its article) or several.
func noun(t reflect.Type, plural bool) string {
	pick := func(one, many string) string {
		if plural {
			return many
		}
		return one
	}
	t = deref(t)
	switch {
	case t == nil:
		return pick("a valid value", "valid values")
	case t == timeType:
		return pick("an RFC 3339 time such as 2027-01-01T00:00:00Z", "RFC 3339 times")
	case reflect.PointerTo(t).Implements(unmarshalerType) || reflect.PointerTo(t).Implements(textType):
		return pick("a valid value", "valid values")
	}
	switch t.Kind() {
	case reflect.String:
		return pick("a string", "strings")
	case reflect.Bool:
		return pick("a boolean (true or false)", "booleans")
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return pick("an integer", "integers")
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return pick("a non-negative integer", "non-negative integers")
	case reflect.Float32, reflect.Float64:
		return pick("a number", "numbers")
	case reflect.Slice, reflect.Array:
		return pick("an array", "arrays") + " of " + noun(t.Elem(), true)
	case reflect.Map:
		return pick("an object", "objects") + " of " + noun(t.Elem(), true)
	case reflect.Struct:
		return pick("an object", "objects")
	}
	return pick("a valid value", "valid values")
}

func deref(t reflect.Type) reflect.Type {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

func isInteger(t reflect.Type) bool {
	switch deref(t).Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return true
	}
	return isUnsigned(t)
}

func isUnsigned(t reflect.Type) bool {
	switch deref(t).Kind() {
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return true
	}
	return false
}

func isNumber(t reflect.Type) bool {
	k := deref(t)
	return k != nil && (isInteger(k) || k.Kind() == reflect.Float32 || k.Kind() == reflect.Float64)
}
