//===- WorkerTeam.h - The engine's threads, kept hot ------------*- C++ -*-===//
//
// A forward pass is a few hundred parallel regions per token (each
// projection of each layer, the LM head), back to back with a little serial
// work between them. A thread pool that parks its workers on a condition
// variable makes each region wait for a wake-up, and on a VM that wake-up
// costs hundreds of microseconds: measured on the 34-layer synthetic with
// two threads, the threads were busy only 78% of the time spent in parallel
// regions. A team's workers spin for a while between regions (then sleep),
// and the calling thread works too, so that a region starts on every
// thread at once.
//
// Which thread runs which chunk is not fixed; callers give every element of
// their output to exactly one chunk, computed the same way wherever it
// runs, so results do not depend on the thread count.
//
//===----------------------------------------------------------------------===//
#ifndef VINDEX_LIB_MODEL_WORKERTEAM_H
#define VINDEX_LIB_MODEL_WORKERTEAM_H

#include "llvm/ADT/STLFunctionalExtras.h"

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace vindex {

class WorkerTeam {
public:
  /// Threads - 1 workers; the thread that calls run() is the last member.
  explicit WorkerTeam(unsigned Threads);
  ~WorkerTeam();
  WorkerTeam(const WorkerTeam &) = delete;
  WorkerTeam &operator=(const WorkerTeam &) = delete;

  /// Runs Body(I) for every I in [0, N), each once, across the team;
  /// returns when all have returned. Not reentrant.
  void run(size_t N, llvm::function_ref<void(size_t)> Body);

private:
  void workerLoop();
  /// Claims and runs chunks of round Round until none is left.
  void drain(uint32_t Round);
  /// Blocks until Round differs from Seen.
  void sleepUntilRoundAfter(uint32_t Seen);
  void wakeSleepers();

  std::vector<std::thread> Workers;
  /// The current round's number; workers wait for it to change.
  std::atomic<uint32_t> Round{0};
  /// (round << 32) | next chunk: a chunk is claimed only while the round
  /// is the claimer's, so a worker late from an earlier round claims
  /// nothing of a later one.
  std::atomic<uint64_t> Ticket{0};
  std::atomic<size_t> Count{0};
  std::atomic<size_t> Done{0};
  std::atomic<const llvm::function_ref<void(size_t)> *> Job{nullptr};
  std::atomic<bool> Stopping{false};
  /// Workers that stopped spinning and wait on WakeUp.
  std::atomic<unsigned> Sleepers{0};
  std::mutex SleepMutex;
  std::condition_variable WakeUp;
};

} // namespace vindex

#endif // VINDEX_LIB_MODEL_WORKERTEAM_H
