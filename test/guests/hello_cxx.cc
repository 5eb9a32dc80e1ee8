// C++ guest: iostream, exceptions, static constructors, std containers.
#include <iostream>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

static std::vector<std::string> g_log;
struct Early {
  Early() { g_log.push_back("static-ctor"); }
};
static Early g_early;

static int risky(int x) {
  if (x > 2) throw std::runtime_error("too big: " + std::to_string(x));
  return x * 10;
}

int main() {
  std::map<std::string, int> m{{"a", 1}, {"b", 2}};
  int caught = 0;
  for (int i = 0; i < 5; i++) {
    try {
      m["k" + std::to_string(i)] = risky(i);
    } catch (const std::exception &e) {
      caught++;
      g_log.push_back(e.what());
    }
  }
  std::cout << "hello from C++ " << g_log.front() << " caught=" << caught << " size=" << m.size() << std::endl;
  for (auto &s : g_log) std::cout << s << "\n";
  return 0;
}
