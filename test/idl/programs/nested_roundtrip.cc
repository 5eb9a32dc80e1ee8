// Runs natively (no VM): the nested.fbs server skeleton, C++ client and C builders/readers in
// one process, with the SDK's guest calls replaced by an in-process registry. Requests built
// with the generated C builders pass the FlatBuffers verifier in the skeleton; replies are
// read with both the C++ accessors and the generated C readers.
#include <cassert>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "nested_farcall_client.hpp"
#include "nested_farcall_server.hpp"
#include "nested_farcall.h"
#include "native_sdk.h"

using namespace golden::nested;

struct TreesImpl : TreesService {
  farcall::rpc::Status Walk(const Node &n, flatbuffers::FlatBufferBuilder &fbb, flatbuffers::Offset<Summary> &reply) override {
    uint32_t count = 0;
    double weight = 0;
    std::vector<std::string> names;
    walk(n, count, weight, names);
    float area = n.box() ? (n.box()->max().x() - n.box()->min().x()) * (n.box()->max().y() - n.box()->min().y()) : 0;
    std::vector<flatbuffers::Offset<flatbuffers::String>> ns;
    for (auto &s : names) ns.push_back(fbb.CreateString(s));
    auto v = fbb.CreateVector(ns);
    reply = CreateSummary(fbb, count, weight, v, Figure_NONE, 0, area);
    return {};
  }
  static void walk(const Node &n, uint32_t &count, double &weight, std::vector<std::string> &names) {
    count++;
    if (n.name()) names.push_back(n.name()->str());
    if (n.leaves()) for (auto l : *n.leaves()) weight += l->weight();
    if (n.values()) for (auto v : *n.values()) weight += v;
    if (n.children()) for (auto c : *n.children()) walk(*c, count, weight, names);
  }
};

struct DrawingsImpl : DrawingsService {
  farcall::rpc::Status Measure(const Drawing &d, flatbuffers::FlatBufferBuilder &fbb, flatbuffers::Offset<Summary> &reply) override {
    float area = 0;
    if (auto c = d.figure_as_Circle()) area = 3.0f * c->radius() * c->radius();
    if (auto p = d.figure_as_Polygon()) area = float(p->corners() ? p->corners()->size() : 0);
    if (d.figure_type() == Figure_Leaf) return farcall::rpc::Status::error(7, "leaves have no area");
    reply = CreateSummary(fbb, 1, 0, 0, d.figure_type(), 0, area);
    return {};
  }
};

int main() {
  static TreesImpl trees;
  static DrawingsImpl drawings;
  if (Trees_register(trees) || Drawings_register(drawings)) return 1;
  TreesClient tc;
  DrawingsClient dc;
  if (tc.connect("nested") || dc.connect(nullptr)) { printf("connect: %s\n", tc.error()); return 1; }

  // A tree built with the C builders: root(values 1,2; leaves a=0.5,b=1.5; box 0..2 x 0..3) -> child "kid".
  static uint64_t arena[4096];
  fc_builder b;
  fc_builder_init(&b, arena, sizeof arena);
  fc_ref kid = golden_nested_Node_create(&b, fc_create_cstring(&b, "kid"), 0, 0, 0, 0, 0, 0, 0, NULL, golden_nested_Shape_Circle);
  fc_ref kids = fc_create_vector_refs(&b, &kid, 1);
  fc_ref leaves[2] = {golden_nested_Leaf_create(&b, fc_create_cstring(&b, "a"), 0.5), golden_nested_Leaf_create(&b, fc_create_cstring(&b, "b"), 1.5)};
  fc_ref lv = fc_create_vector_refs(&b, leaves, 2);
  fc_ref tags[2] = {fc_create_cstring(&b, "t1"), fc_create_cstring(&b, "t2")};
  fc_ref tv = fc_create_vector_refs(&b, tags, 2);
  int32_t values[2] = {1, 2};
  fc_ref vv = fc_create_vector(&b, values, 2, 4, 4);
  uint8_t flags[3] = {1, 0, 1};
  fc_ref fv = fc_create_vector(&b, flags, 3, 1, 1);
  int16_t shapes[2] = {golden_nested_Shape_Triangle, golden_nested_Shape_Circle};
  fc_ref sv = fc_create_vector(&b, shapes, 2, 2, 2);
  golden_nested_Point_t pts[2];
  golden_nested_Point_set_x(&pts[0], 1);
  golden_nested_Point_set_y(&pts[0], 2);
  golden_nested_Point_set_x(&pts[1], 3);
  golden_nested_Point_set_y(&pts[1], 4);
  fc_ref pv = fc_create_vector(&b, pts, 2, sizeof pts[0], 4);
  golden_nested_Box_t box;
  memset(&box, 0, sizeof box);
  golden_nested_Point_t mx;
  golden_nested_Point_set_x(&mx, 2);
  golden_nested_Point_set_y(&mx, 3);
  golden_nested_Box_set_max(&box, &mx);
  golden_nested_Box_set_tag(&box, 9);
  fc_ref root = golden_nested_Node_create(&b, fc_create_cstring(&b, "root"), kids, lv, tv, vv, fv, sv, pv, &box, golden_nested_Shape_Triangle);
  size_t len;
  const void *buf = fc_finish(&b, root, &len);
  assert(buf);
  // Read it back with the C readers.
  const golden_nested_Node_table_t *n = golden_nested_Node_as_root(buf);
  assert(!strcmp(golden_nested_Node_name(n), "root"));
  assert(golden_nested_Node_children_len(n) == 1 && !strcmp(golden_nested_Node_name(golden_nested_Node_children_at(n, 0)), "kid"));
  assert(golden_nested_Node_tags_len(n) == 2 && !strcmp(golden_nested_Node_tags_at(n, 1), "t2"));
  assert(golden_nested_Node_values_at(n, 1) == 2 && golden_nested_Node_flags_len(n) == 3 && golden_nested_Node_shapes_at(n, 0) == golden_nested_Shape_Triangle);
  assert(golden_nested_Point_y(golden_nested_Node_points_at(n, 1)) == 4);
  assert(golden_nested_Box_tag(golden_nested_Node_box(n)) == 9 && golden_nested_Point_x(golden_nested_Box_max(golden_nested_Node_box(n))) == 2);
  assert(golden_nested_Node_shape(n) == golden_nested_Shape_Triangle);
  assert(golden_nested_Node_shape(golden_nested_Node_children_at(n, 0)) == golden_nested_Shape_Circle);
  assert(golden_nested_Leaf_weight(golden_nested_Node_leaves_at(n, 1)) == 1.5);

  auto s = tc.Walk(buf, len);
  if (!s) { printf("walk: %lld %s\n", (long long)s.result(), s.message()); return 1; }
  assert(s->count() == 2 && s->total_weight() == 5.0 && s->names()->size() == 2 && s->area() == 6.0f);

  // Unions, from the C++ side, and an application error.
  flatbuffers::FlatBufferBuilder fbb;
  auto m = dc.Measure(fbb, CreateDrawing(fbb, fbb.CreateString("c"), Figure_Circle, CreateCircle(fbb, 2).Union()));
  assert(m && m->area() == 12.0f && m->figure_kind_type() == Figure_Circle);
  auto e = dc.Measure(fbb, CreateDrawing(fbb, 0, Figure_Leaf, CreateLeaf(fbb).Union()));
  assert(!e && e.result() == FARCALL_RPC_E_FAILED && e.code() == 7 && !strcmp(e.message(), "leaves have no area"));
  // A union built with the C builder, read back with the C reader for the reply.
  fc_builder_reset(&b);
  golden_nested_Point_t corner[3];
  memset(corner, 0, sizeof corner);
  fc_ref poly = golden_nested_Polygon_create(&b, fc_create_vector(&b, corner, 3, sizeof corner[0], 4));
  buf = fc_finish(&b, golden_nested_Drawing_create(&b, 0, golden_nested_Figure_Polygon, poly, 0), &len);
  static uint64_t reply[512];
  int64_t r = golden_nested_Drawings_Measure(buf, len, reply, sizeof reply);
  assert(r == FARCALL_RPC_E_NOT_CONNECTED);  // the C client is not connected in this process
  r = farcall_rpc_call((farcall_rpc_fn)farcall_lookup("Drawings_Measure"), buf, len, reply, sizeof reply);
  assert(r > 0);
  const golden_nested_Summary_table_t *sum = golden_nested_Summary_as_root(reply);
  assert(golden_nested_Summary_area(sum) == 3.0f && golden_nested_Summary_figure_kind_type(sum) == golden_nested_Figure_Polygon);
  // Unimplemented and garbage.
  auto p = dc.Clear(fbb, CreateEmpty(fbb));
  assert(!p && p.result() == FARCALL_RPC_E_UNIMPLEMENTED);
  uint8_t junk[64];
  for (int i = 0; i < 64; i++) junk[i] = uint8_t(i * 37 + 11);
  auto j = tc.Walk(junk, sizeof junk);
  assert(!j && j.result() == FARCALL_RPC_E_BAD_REQUEST);
  printf("nested ok\n");
  return 0;
}
