// RwkvState's device residency (state.h) without a device: a fake owner that keeps "newer"
// floats of its own shows when the state fetches them, when it gives its copy up, and that
// copies, moves, resets and destruction all leave the host floats current.
#include "services/worker/model/state.h"

#include <map>
#include <vector>

#include "gtest/gtest.h"

namespace skein::model {
namespace {

// Holds a device copy of each attached state: `device[state]`, newer than the host's.
class FakeResidency : public StateResidency {
 public:
  void Attach(RwkvState& s, float value) {
    device[&s] = std::vector<float>(s.host_floats().size(), value);
    s.AttachResidency(this, /*device_newer=*/true);
  }
  void Fetch(RwkvState& s) override {
    ++fetches;
    auto it = device.find(&s);
    if (it == device.end() || !s.device_newer()) return;
    std::copy(it->second.begin(), it->second.end(), s.host_floats().begin());
    s.MarkHostCurrent();
  }
  void Release(RwkvState& s) override {
    ++releases;
    device.erase(&s);
    s.DetachResidency();
  }
  std::map<const RwkvState*, std::vector<float>> device;
  int fetches = 0, releases = 0;
};

constexpr StateShape kShape{0, 2, 64, 1, 64};

TEST(StateResidencyTest, ReadsFetchAndKeepTheCopyWritesEndIt) {
  FakeResidency owner;
  RwkvState s(kShape);
  owner.Attach(s, 3.0f);
  // A const read fetches once; the device copy stays (both are current now).
  const RwkvState& view = s;
  EXPECT_EQ(view.att_kv(1)[5], 3.0f);
  EXPECT_EQ(view.data()[0], 3.0f);
  EXPECT_EQ(owner.fetches, 1);
  EXPECT_EQ(s.residency(), &owner);
  EXPECT_FALSE(s.device_newer());
  // A mutable access gives the device copy up (the host is about to change).
  s.att_x_prev(0)[0] = 7.0f;
  EXPECT_EQ(s.residency(), nullptr);
  EXPECT_EQ(owner.releases, 1);
  EXPECT_TRUE(owner.device.empty());
  EXPECT_EQ(view.data()[0], 7.0f);
}

TEST(StateResidencyTest, CopiesMovesResetsAndDestructionLeaveCurrentFloats) {
  FakeResidency owner;
  RwkvState a(kShape);
  owner.Attach(a, 2.0f);
  RwkvState copy = a;  // fetches; the copy is never resident
  EXPECT_EQ(copy.residency(), nullptr);
  EXPECT_EQ(copy.data()[10], 2.0f);
  EXPECT_EQ(a.residency(), &owner);

  owner.Attach(a, 4.0f);           // newer floats on the device again
  RwkvState moved = std::move(a);  // the source fetches and gives its copy up
  EXPECT_EQ(moved.residency(), nullptr);
  EXPECT_EQ(moved.data()[10], 4.0f);
  EXPECT_TRUE(owner.device.empty());

  owner.Attach(moved, 5.0f);
  moved.set_position(9);
  moved.Reset();  // a host write: the device copy is dropped, the zero state wins
  EXPECT_EQ(moved.residency(), nullptr);
  EXPECT_EQ(moved.data()[10], 0.0f);
  EXPECT_EQ(moved.position(), 0);

  {
    RwkvState gone(kShape);
    owner.Attach(gone, 1.0f);
  }  // destruction releases without fetching
  EXPECT_TRUE(owner.device.empty());
}

}  // namespace
}  // namespace skein::model
