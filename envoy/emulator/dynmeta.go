package emulator

import (
	"strconv"
	"sync"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// dynMeta is the stream's dynamic metadata (filter_metadata by namespace).
type dynMeta struct {
	mu sync.Mutex
	ns map[string]*structpb.Struct
}

// merge merges fields into namespace ns (StreamInfo::setDynamicMetadata).
func (d *dynMeta) merge(ns string, s *structpb.Struct) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ns == nil {
		d.ns = map[string]*structpb.Struct{}
	}
	cur, ok := d.ns[ns]
	if !ok {
		cur = &structpb.Struct{Fields: map[string]*structpb.Value{}}
		d.ns[ns] = cur
	}
	for k, v := range s.GetFields() {
		cur.Fields[k] = proto.Clone(v).(*structpb.Value)
	}
}

// lookup walks ns then path; nil when absent.
func (d *dynMeta) lookup(ns string, path []string) *structpb.Value {
	d.mu.Lock()
	defer d.mu.Unlock()
	s, ok := d.ns[ns]
	if !ok || len(path) == 0 {
		return nil
	}
	v := structpb.NewStructValue(s)
	for _, p := range path {
		f := v.GetStructValue().GetFields()
		if f == nil {
			return nil
		}
		if v, ok = f[p]; !ok {
			return nil
		}
	}
	return proto.Clone(v).(*structpb.Value)
}

// formatValue renders a value as Envoy's %DYNAMIC_METADATA% formatter does
// for scalars: strings as is, numbers without a trailing ".0".
func formatValue(v *structpb.Value) (string, bool) {
	switch k := v.GetKind().(type) {
	case *structpb.Value_StringValue:
		return k.StringValue, true
	case *structpb.Value_NumberValue:
		return strconv.FormatFloat(k.NumberValue, 'f', -1, 64), true
	case *structpb.Value_BoolValue:
		return strconv.FormatBool(k.BoolValue), true
	}
	return "", false
}
