// C++ with iostreams: formatted output, file streams on the input and output directories, the standard
// containers and algorithms. Usage: iostreams IN_DIR OUT_DIR [ARGS...].
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

static void formatting() {
    const double values[] = {0.0, -0.0, 1.0, 0.1, 1.0 / 3.0, 123456.789, 1e-5, 1e21, 6.02214076e23, -2.5};
    for (double v : values) {
        std::cout << v << ' ' << std::fixed << std::setprecision(3) << v << ' ' << std::scientific << v << ' '
                  << std::defaultfloat << std::setprecision(12) << v << ' ' << std::setprecision(6)
                  << std::setw(14) << std::left << v << '|' << std::right << std::setw(14) << v << '|'
                  << std::showpos << v << std::noshowpos << '\n';
    }
    std::cout << 255 << ' ' << std::hex << 255 << ' ' << std::showbase << 255 << ' ' << std::uppercase << 255
              << std::nouppercase << std::noshowbase << std::dec << ' ' << std::oct << 64 << std::dec << '\n';
    std::cout << std::boolalpha << true << ' ' << false << std::noboolalpha << ' ' << true << '\n';
    std::cout << std::setfill('*') << std::setw(10) << "pad" << std::setfill(' ') << '\n';
    std::cout << INT64_MIN << ' ' << UINT64_MAX << ' ' << static_cast<int>('A') << ' ' << 'A' << '\n';
    std::ostringstream os;
    os << "in a string " << 3.5 << ' ' << 42;
    std::istringstream is("17 2.25 word 0x1f");
    int i = 0;
    double d = 0;
    std::string w;
    int h = 0;
    is >> i >> d >> w >> std::hex >> h;
    std::cout << os.str() << " | parsed " << i << ' ' << d << ' ' << w << ' ' << h << '\n';
}

static void containers(int argc, char **argv) {
    std::vector<std::string> args(argv + 3, argv + argc);
    std::cout << "args " << args.size();
    for (const auto &a : args) std::cout << " [" << a << ']';
    std::cout << '\n';
    const char *greeting = std::getenv("CONF_GREETING");
    std::cout << "getenv " << (greeting ? greeting : "(null)") << '\n';
    std::vector<uint32_t> v(5000);
    uint32_t x = 88172645u;
    for (auto &e : v) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        e = x % 100000;
    }
    std::sort(v.begin(), v.end());
    auto last = std::unique(v.begin(), v.end());
    std::cout << "sorted unique " << (last - v.begin()) << " min " << v.front() << " max " << *(last - 1)
              << " sum " << std::accumulate(v.begin(), last, uint64_t{0}) << '\n';
}

static int files(const std::string &in, const std::string &out) {
    std::ifstream text(in + "/text.txt");
    if (!text) {
        std::cerr << "cannot open text.txt\n";
        return 1;
    }
    std::map<std::string, int> counts;
    std::string word;
    std::size_t words = 0;
    while (text >> word) {
        ++counts[word];
        ++words;
    }
    std::cout << "words " << words << " distinct " << counts.size() << std::endl;
    std::ofstream report(out + "/counts.txt");
    for (const auto &[k, n] : counts) report << std::setw(4) << n << ' ' << k << '\n';
    report.close();
    std::ifstream again(in + "/text.txt");
    std::string whole((std::istreambuf_iterator<char>(again)), std::istreambuf_iterator<char>());
    std::cout << "text " << whole.size() << " bytes, " << std::count(whole.begin(), whole.end(), '\n') << " lines\n";
    // A few MB in one read and one write (plain loops over them: unoptimised libc++ in Wasm3 is slow per byte).
    std::ifstream big(in + "/big.bin", std::ios::binary | std::ios::ate);
    std::vector<char> data(static_cast<std::size_t>(big.tellg()));
    big.seekg(0);
    big.read(data.data(), static_cast<std::streamsize>(data.size()));
    uint64_t hash = 14695981039346656037ull;
    char *p = data.data();
    for (std::size_t i = 0, n = data.size(); i < n; i++) {
        hash = (hash ^ static_cast<unsigned char>(p[i])) * 1099511628211ull;
        p[i] = static_cast<char>(p[i] ^ 0xa5);
    }
    std::cout << "big " << big.gcount() << " bytes fnv " << std::hex << hash << std::dec << std::endl;
    std::ofstream flipped(out + "/big_flipped.bin", std::ios::binary);
    flipped.write(data.data(), static_cast<std::streamsize>(data.size()));
    flipped.close();
    std::ifstream missing(in + "/no-such-file");
    std::cout << "missing opens: " << std::boolalpha << static_cast<bool>(missing) << std::endl;
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        std::cerr << "usage: iostreams IN_DIR OUT_DIR [ARGS...]\n";
        return 2;
    }
    std::ios::sync_with_stdio(false);
    formatting();
    containers(argc, argv);
    int rc = files(argv[1], argv[2]);
    std::cerr << "iostreams: done" << std::endl;
    return rc;
}
