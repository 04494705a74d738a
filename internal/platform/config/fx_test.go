package config

import (
	"reflect"
	"testing"
)

// TestSectionsCoverConfig: a section added to Config must reach the graph too.
func TestSectionsCoverConfig(t *testing.T) {
	cfg := Default()
	out := reflect.ValueOf(splitSections(&cfg))
	in := reflect.ValueOf(cfg)
	for i := range in.NumField() {
		name := in.Type().Field(i).Name
		field := out.FieldByName(name)
		if !field.IsValid() || field.Type() != in.Field(i).Type() {
			t.Errorf("section %s is not provided by Module", name)
			continue
		}
		if !reflect.DeepEqual(field.Interface(), in.Field(i).Interface()) {
			t.Errorf("section %s is provided with other values", name)
		}
	}
}
