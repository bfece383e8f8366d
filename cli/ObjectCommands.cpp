// !object, !drvobj, !devobj, !devstack, !irp, !list: data from engine/ObjectState and
// engine/IoState, text from cli/ObjectFormat.
#include "cli/ObjectCommands.h"
#include "cli/ObjectFormat.h"
#include "cli/Repl.h"
#include "cli/TextUtil.h"
#include "cli/format/Format.h"
#include "engine/IoState.h"
#include "engine/KernelTypes.h"
#include "engine/ObjectState.h"

#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <unordered_set>
#include <vector>

namespace kdcart::cli {

namespace {

std::vector<std::string> words_of(std::string_view s) {
    std::vector<std::string> out;
    size_t i = 0;
    while (i < s.size()) {
        while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) {
            ++i;
        }
        if (i >= s.size()) {
            break;
        }
        std::string w;
        if (s[i] == '"') {
            ++i;
            while (i < s.size() && s[i] != '"') {
                if (s[i] == '\\' && i + 1 < s.size() && s[i + 1] == '"') {
                    ++i;
                }
                w.push_back(s[i++]);
            }
            ++i;
        } else {
            while (i < s.size() && !std::isspace(static_cast<unsigned char>(s[i]))) {
                w.push_back(s[i++]);
            }
        }
        out.push_back(std::move(w));
    }
    return out;
}

class ObjectCommands {
  public:
    ObjectCommands(engine::Debugger& dbg, Output& out,
                   const std::function<void(const std::string&)>& run_line)
        : m_dbg(dbg), m_out(out), m_run_line(run_line) {}

    bool run(std::string_view word, std::string_view args) {
        if (word == "!object") {
            with_types([&](const engine::KernelTypes& kt) { object(kt, args); });
        } else if (word == "!drvobj") {
            with_types([&](const engine::KernelTypes& kt) { drvobj(kt, args); });
        } else if (word == "!devobj") {
            with_types([&](const engine::KernelTypes& kt) { devobj(kt, args, false); });
        } else if (word == "!devstack") {
            with_types([&](const engine::KernelTypes& kt) { devobj(kt, args, true); });
        } else if (word == "!irp") {
            with_types([&](const engine::KernelTypes& kt) { irp(kt, args); });
        } else if (word == "!list") {
            list(args);
        } else {
            return false;
        }
        return true;
    }

  private:
    void print(std::string_view s) { m_out.write(s); }
    void error(std::string_view s) {
        std::string t(s);
        if (t.empty() || t.back() != '\n') {
            t.push_back('\n');
        }
        m_out.write(t);
    }

    template <typename F> void with_types(F f) {
        auto kt = engine::KernelTypes::of_nt(m_dbg);
        if (!kt) {
            error(kt.error().message);
            return;
        }
        f(*kt);
    }

    std::optional<uint64_t> value(std::string_view text) {
        auto v = m_dbg.evaluate(text);
        if (!v) {
            error(v.error().message);
            return std::nullopt;
        }
        return *v;
    }

    // An object path or a plain name (letters, digits, '_', '\\', '.'), not an expression.
    static bool looks_like_name(const std::string& w) {
        if (w.empty()) {
            return false;
        }
        for (char c : w) {
            if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '\\' && c != '.' &&
                c != '-') {
                return false;
            }
        }
        return true;
    }

    SymbolText symbols() {
        return [this](uint64_t a) -> std::optional<std::string> {
            if (auto s = m_dbg.symbolize(a); s && !s->name.empty()) {
                return format_symbol(*s);
            }
            return std::nullopt;
        };
    }

    // !object ADDR | \path
    void object(const engine::KernelTypes& kt, std::string_view args) {
        auto w = words_of(args);
        if (w.empty() || w.size() > 2) {
            error("Usage: !object ADDRESS | \\Path");
            return;
        }
        engine::ObjectState ob(m_dbg, kt);
        uint64_t addr = 0;
        if (!w[0].empty() && w[0][0] == '\\') {
            auto found = ob.lookup(w[0]);
            if (!found) {
                error(found.error().message);
                return;
            }
            addr = *found;
        } else {
            auto v = value(w[0]);
            if (!v) {
                return;
            }
            addr = *v;
        }
        auto h = ob.header(addr);
        if (!h) {
            error(h.error().message);
            return;
        }
        if (h->type_name == "Directory") {
            auto list = ob.directory(addr);
            if (!list) {
                print(format_object(*h, nullptr));
                error("Unable to list the directory: " + list.error().message);
                return;
            }
            print(format_object(*h, &*list));
            return;
        }
        print(format_object(*h, nullptr));
    }

    // !drvobj NAME|ADDR [flags]
    void drvobj(const engine::KernelTypes& kt, std::string_view args) {
        auto w = words_of(args);
        if (w.empty() || w.size() > 2) {
            error("Usage: !drvobj DriverObject|\\Driver\\Name|Name [Flags]   (flags: 1 devices, 2 "
                  "dispatch routines)");
            return;
        }
        engine::IoState io(m_dbg, kt);
        uint64_t flags = 1;
        if (w.size() == 2) {
            auto f = value(w[1]);
            if (!f) {
                return;
            }
            flags = *f;
        }
        uint64_t addr = 0;
        // A driver's name first (a path, or a plain name under \Driver / \FileSystem), an
        // address or expression otherwise.
        if (auto d = looks_like_name(w[0])
                         ? io.driver_by_name(w[0])
                         : Result<uint64_t>(tl::unexpected(Error(Errc::NotFound, "not a name")));
            d) {
            addr = *d;
        } else if (w[0][0] == '\\') {
            error("Driver object " + w[0] + " not found: " + d.error().message);
            return;
        } else if (auto v = m_dbg.evaluate(w[0])) {
            addr = *v;
        } else {
            error("Driver object " + w[0] +
                  " not found: " + (looks_like_name(w[0]) ? d.error().message : v.error().message));
            return;
        }
        auto d = io.driver(addr);
        if (!d) {
            error(d.error().message);
            return;
        }
        print(format_driver(*d, flags, symbols()));
    }

    // !devobj ADDR|NAME, !devstack ADDR|NAME
    void devobj(const engine::KernelTypes& kt, std::string_view args, bool stack) {
        auto w = words_of(args);
        if (w.size() != 1) {
            error(stack ? "Usage: !devstack DeviceObject|\\Device\\Name"
                        : "Usage: !devobj DeviceObject|\\Device\\Name");
            return;
        }
        engine::IoState io(m_dbg, kt);
        uint64_t addr = 0;
        engine::ObjectState ob(m_dbg, kt);
        if (auto d = looks_like_name(w[0])
                         ? ob.lookup(w[0][0] == '\\' ? w[0] : "\\Device\\" + w[0])
                         : Result<uint64_t>(tl::unexpected(Error(Errc::NotFound, "not a name")));
            d) {
            addr = *d;
        } else if (w[0][0] == '\\') {
            error("Device object " + w[0] + " not found: " + d.error().message);
            return;
        } else if (auto v = m_dbg.evaluate(w[0])) {
            addr = *v;
        } else {
            error("Device object " + w[0] +
                  " not found: " + (looks_like_name(w[0]) ? d.error().message : v.error().message));
            return;
        }
        if (stack) {
            auto s = io.device_stack(addr);
            if (!s) {
                error(s.error().message);
                return;
            }
            print(format_device_stack(*s, addr));
            return;
        }
        auto d = io.device(addr);
        if (!d) {
            error(d.error().message);
            return;
        }
        print(format_device(*d));
    }

    // !irp ADDR [1]
    void irp(const engine::KernelTypes& kt, std::string_view args) {
        auto w = words_of(args);
        if (w.empty() || w.size() > 2) {
            error("Usage: !irp Address [1]   (1: the IRP's fields too)");
            return;
        }
        auto a = value(w[0]);
        if (!a) {
            return;
        }
        bool detail = false;
        if (w.size() == 2) {
            auto f = value(w[1]);
            if (!f) {
                return;
            }
            detail = *f != 0;
        }
        engine::IoState io(m_dbg, kt);
        auto r = io.irp(*a);
        if (!r) {
            error(r.error().message);
            return;
        }
        print(format_irp(*r, detail, symbols()));
    }

    // !list [-t Type.Field] -x "command" [-m Max] ADDR: from ADDR along the Flink (the first
    // pointer, or Type.Field's offset), running the command for each element with @$extret
    // standing for its address, until the list comes back to ADDR, a null or unreadable link,
    // a loop, or Max elements. Ctrl+C stops it.
    void list(std::string_view args) {
        auto w = words_of(args);
        std::string command;
        std::string type_field;
        uint64_t max = 4096;
        std::string start_text;
        for (size_t i = 0; i < w.size(); ++i) {
            const std::string lw = lower(w[i]);
            if ((lw == "-x" || lw == "-a") && i + 1 < w.size()) {
                if (lw == "-x") {
                    command = w[++i];
                } else {
                    command += " " + w[++i];
                }
            } else if (lw == "-t" && i + 1 < w.size()) {
                type_field = w[++i];
            } else if (lw == "-m" && i + 1 < w.size()) {
                auto m = value(w[++i]);
                if (!m) {
                    return;
                }
                max = *m;
            } else if (lw == "-e") {
                // echo each command: done below anyway
            } else if (start_text.empty()) {
                start_text = w[i];
            } else {
                error("Usage: !list [-t Module!Type.Field] -x \"command\" [-m Max] StartAddress");
                return;
            }
        }
        if (start_text.empty() || command.empty()) {
            error("Usage: !list [-t Module!Type.Field] -x \"command\" [-m Max] StartAddress");
            return;
        }
        auto start = value(start_text);
        if (!start) {
            return;
        }
        uint64_t link_offset = 0;
        if (!type_field.empty()) {
            auto kt = engine::KernelTypes::of_nt(m_dbg);
            const size_t bang = type_field.find('!');
            std::string tf = bang == std::string::npos ? type_field : type_field.substr(bang + 1);
            const size_t dot = tf.find('.');
            if (!kt || dot == std::string::npos) {
                error("Unable to use -t " + type_field +
                      (kt ? ": expected Type.Field" : ": " + kt.error().message));
                return;
            }
            auto off = kt->offset(tf.substr(0, dot), tf.substr(dot + 1));
            if (!off) {
                error(off.error().message);
                return;
            }
            link_offset = *off;
        }
        std::unordered_set<uint64_t> seen;
        uint64_t cur = *start;
        for (uint64_t n = 0; n < max; ++n) {
            if (g_interrupt.load()) {
                error("^C: the list walk was stopped");
                return;
            }
            if (!seen.insert(cur).second) {
                error("The list loops at " + hex_digits(cur) + " (it does not come back to " +
                      hex_digits(*start) + "): stopped");
                return;
            }
            std::string line = command;
            for (const char* token : {"@$extret", "$extret"}) {
                for (size_t p = 0; (p = line.find(token, p)) != std::string::npos;) {
                    const std::string v = "0x" + hex_digits(cur);
                    line.replace(p, std::strlen(token), v);
                    p += v.size();
                }
            }
            m_run_line(line);
            print("\n");
            auto next = m_dbg.memory().read_u64(cur + link_offset);
            if (!next) {
                error("The link at " + hex_digits(cur + link_offset) + " is not readable: stopped");
                return;
            }
            if (*next == 0) {
                return;
            }
            cur = *next - link_offset;
            if (cur == *start) {
                return;
            }
        }
    }

    engine::Debugger& m_dbg;
    Output& m_out;
    const std::function<void(const std::string&)>& m_run_line;
};

} // namespace

bool run_object_command(engine::Debugger& dbg, Output& out, std::string_view word,
                        std::string_view args,
                        const std::function<void(const std::string&)>& run_line) {
    ObjectCommands c(dbg, out, run_line);
    return c.run(word, args);
}

} // namespace kdcart::cli
