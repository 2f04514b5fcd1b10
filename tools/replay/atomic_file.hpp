// tools/replay/atomic_file.hpp — an output file that appears complete or not at all.
//
// AtomicFile(path) creates a temporary next to `path` (same directory, so the final rename stays
// on one file system); stream() writes into it; commit() flushes, closes and renames it onto
// `path`. Destroying an AtomicFile that was not committed removes the temporary, so a failed
// run leaves neither a partial file nor any previous file at `path` damaged. Opening early
// (before the work) doubles as the check that `path` is writable.
// Errors: the constructor and commit() throw OutputError naming the path and the reason.
// Not copyable; one owner; not thread-safe.
#pragma once

#include <fstream>
#include <stdexcept>
#include <string>

namespace kvbm::replay {

class OutputError : public std::runtime_error {
 public:
  explicit OutputError(const std::string& what) : std::runtime_error(what) {}
};

class AtomicFile {
 public:
  explicit AtomicFile(std::string path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  [[nodiscard]] std::ostream& stream() noexcept { return out_; }
  [[nodiscard]] const std::string& path() const noexcept { return path_; }
  [[nodiscard]] const std::string& temporary_path() const noexcept { return temporary_; }
  /// Makes the file appear at path(); throws OutputError if it cannot (the temporary is removed).
  void commit();

 private:
  std::string path_;
  std::string temporary_;
  std::ofstream out_;
  bool committed_ = false;
};

}  // namespace kvbm::replay
