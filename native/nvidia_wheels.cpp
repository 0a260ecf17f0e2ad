#include "nvidia_wheels.h"

#include <glob.h>

#include <algorithm>
#include <cstdlib>

namespace simcsepp {

std::vector<std::string> nvidia_wheel_libraries(const std::string& pattern) {
  std::vector<std::string> prefixes = {"/usr/local/lib", "/usr/lib", "/opt/conda/lib"};
  if (const char* home = std::getenv("HOME"); home && *home) prefixes.push_back(std::string(home) + "/.local/lib");
  for (const char* env : {"VIRTUAL_ENV", "CONDA_PREFIX"})
    if (const char* p = std::getenv(env); p && *p) prefixes.push_back(std::string(p) + "/lib");
  std::vector<std::string> found;
  for (const std::string& prefix : prefixes)
    for (const char* packages : {"python3*/site-packages", "python3*/dist-packages", "python3/dist-packages"}) {
      const std::string full = prefix + "/" + packages + "/nvidia/" + pattern;
      glob_t g{};
      if (glob(full.c_str(), 0, nullptr, &g) == 0)
        for (size_t i = 0; i < g.gl_pathc; ++i)
          if (std::find(found.begin(), found.end(), g.gl_pathv[i]) == found.end()) found.emplace_back(g.gl_pathv[i]);
      globfree(&g);
    }
  return found;
}

}  // namespace simcsepp
