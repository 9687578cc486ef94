// core/progress.h JobProgress (phase fractions, ETA never "0m00s" at the start) and
// core/cancel.h (a signal sets the flag; check_cancel names it).
#include <gtest/gtest.h>

#include <csignal>

#include "core/cancel.h"
#include "core/progress.h"

using namespace awq;

TEST(JobProgress, FractionFollowsPhaseWork) {
  JobProgress p("job", 100, false);
  EXPECT_DOUBLE_EQ(p.fraction(), 0.0);
  p.begin_phase("a", 20);
  p.set_fraction(0.5);
  EXPECT_NEAR(p.fraction(), 0.10, 1e-12);
  report_phase_fraction(1.0);  // the active progress
  EXPECT_NEAR(p.fraction(), 0.20, 1e-12);
  p.begin_phase("b", 80);  // "a" counts as done
  EXPECT_NEAR(p.fraction(), 0.20, 1e-12);
  p.set_fraction(0.25);
  EXPECT_NEAR(p.fraction(), 0.40, 1e-12);
  EXPECT_NE(p.line().find("b 25% | 40.0%"), std::string::npos) << p.line();
}

TEST(JobProgress, NoZeroEtaAtTheStart) {
  JobProgress p("job", 100, false);
  p.begin_phase("first", 50);
  const std::string l = p.line();
  EXPECT_NE(l.find("ETA --"), std::string::npos) << l;
  EXPECT_EQ(l.find("ETA 0m00s"), std::string::npos) << l;
  p.set_fraction(0.5);  // 25% done after ~0 s: an ETA can be given
  EXPECT_EQ(p.line().find("ETA --"), std::string::npos) << p.line();
}

TEST(Cancel, SignalSetsTheFlagAndCheckNamesIt) {
  clear_cancel();
  EXPECT_TRUE(check_cancel("x").ok());
  install_cancel_handlers();
  std::raise(SIGTERM);  // handled: the process goes on
  EXPECT_TRUE(cancel_requested());
  Status s = check_cancel("quantize");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message(), "quantize: interrupted by SIGTERM");
  clear_cancel();
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
  EXPECT_FALSE(cancel_requested());
}
