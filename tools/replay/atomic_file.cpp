#include "replay/atomic_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

namespace kvbm::replay {

namespace {

std::string reason(int error) { return std::strerror(error); }

}  // namespace

AtomicFile::AtomicFile(std::string path) : path_{std::move(path)} {
  if (path_.empty()) throw OutputError("empty output path");
  std::vector<char> name(path_.begin(), path_.end());
  const std::string suffix = ".tmp.XXXXXX";
  name.insert(name.end(), suffix.begin(), suffix.end());
  name.push_back('\0');
  const int fd = ::mkstemp(name.data());
  if (fd < 0) throw OutputError("cannot write " + path_ + ": " + reason(errno));
  // mkstemp makes the file 0600; give it the permissions an ordinary create would have.
  const mode_t mask = ::umask(0);
  ::umask(mask);
  ::fchmod(fd, 0666 & ~mask);
  ::close(fd);
  temporary_ = name.data();
  out_.open(temporary_, std::ios::out | std::ios::trunc);
  if (!out_) {
    const int error = errno;
    std::remove(temporary_.c_str());
    throw OutputError("cannot write " + path_ + ": " + reason(error));
  }
}

AtomicFile::~AtomicFile() {
  if (committed_) return;
  out_.close();
  std::remove(temporary_.c_str());
}

void AtomicFile::commit() {
  out_.flush();
  const bool written = static_cast<bool>(out_);
  out_.close();
  if (!written || out_.fail()) {
    std::remove(temporary_.c_str());
    committed_ = true;  // nothing left to clean up
    throw OutputError("cannot write " + path_ + ": write failed");
  }
  if (std::rename(temporary_.c_str(), path_.c_str()) != 0) {
    const int error = errno;
    std::remove(temporary_.c_str());
    committed_ = true;
    throw OutputError("cannot write " + path_ + ": " + reason(error));
  }
  committed_ = true;
}

}  // namespace kvbm::replay
