#pragma once
// The kd> command loop: reads WinDbg commands, runs them through the engine, prints WinDbg's
// formats. All text output of kdcart goes through here.
#include "cli/SymbolCommands.h"
#include "engine/Debugger.h"

#include <atomic>
#include <functional>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

namespace kdcart::cli {

// Set by the SIGINT handler; the loops poll it.
extern std::atomic<bool> g_interrupt;
// Set by SIGTERM/SIGHUP: leave the target clean (break in, remove breakpoints, resume), quit.
extern std::atomic<bool> g_terminate;

class Output {
public:
    virtual ~Output() = default;
    virtual void write(std::string_view text) = 0;
};

// The evaluator lives in the engine; commands use it by these names.
using engine::evaluate_expression;
using engine::evaluate_expression_prefix;
using engine::ExpressionCallbacks;
using engine::k_max_range_bytes;
using engine::parse_range;
using engine::Range;

class Repl final : public engine::EngineDelegate {
public:
    explicit Repl(Output& out) : m_out(out) {}

    void set_debugger(engine::Debugger* dbg);
    // Reads one line from the user (for DbgPrompt); nullopt at end of input.
    void set_line_reader(std::function<std::optional<std::string>(const std::string&)> reader) {
        m_line_reader = std::move(reader);
    }
    // Prints what WinDbg prints once connected, then the stop.
    void announce_connection(const engine::StopEvent& stop);
    void print_stop(const engine::StopEvent& stop);
    // -z: what WinDbg prints when it opens a dump (kind, version, bug check, where it stopped).
    void announce_dump();

    enum class Flow { Continue, Quit };
    // Runs one input line (may hold several ';'-separated commands).
    Flow execute_line(const std::string& line);
    // Waits for the running target to stop, breaking in on Ctrl+C. Returns false when the
    // link failed for good.
    bool wait_while_running();
    std::string prompt() const;
    bool quit_requested() const { return m_quit; }
    int exit_code() const { return m_exit_code; }

    // EngineDelegate
    void on_debug_print(std::string_view text) override;
    std::string on_debug_prompt(std::string_view prompt) override;
    void on_notice(std::string_view text) override;
    void on_exception_passed(const engine::StopEvent& event) override;

private:
    Flow run_command(std::string_view cmd);
    void print(std::string_view text) { m_out.write(text); }
    void error(std::string_view text);

    void cmd_go(std::string_view args);
    // memory (MemoryCommands.cpp): d*, e*, s, f, .writemem, .readmem; true = it was one
    bool run_memory_command(std::string_view cmd);
    void cmd_display(std::string_view name, std::string_view args, bool physical);
    void cmd_enter(std::string_view name, std::string_view args);
    void cmd_enter_string(std::string_view name, std::string_view args);
    void cmd_search(std::string_view args);
    void cmd_fill(std::string_view args);
    void cmd_writemem(std::string_view args);
    void cmd_readmem(std::string_view args);
    // registers (RegisterCommands.cpp): r, rM, rF, rX, rm; true = it was one
    bool run_register_command(std::string_view cmd);
    void cmd_registers(std::string_view args);
    void print_register_groups(uint32_t mask);
    void cmd_vertarget(bool full);
    void cmd_lm(std::string_view args);
    void cmd_evaluate(std::string_view args);
    void cmd_unassemble(std::string_view args);
    void cmd_switch_processor(std::string_view args);
    void cmd_reboot();
    void cmd_help();
    void cmd_stack(std::string_view word, std::string_view args);
    // crash dumps (DumpCommands.cpp)
    void cmd_dump(std::string_view args);
    void cmd_crash();
    void cmd_bugcheck();
    void print_unloaded_modules();
    // breakpoints and stepping (BreakpointCommands.cpp)
    void cmd_bp(std::string_view word, std::string_view args);
    void cmd_ba(std::string_view args);
    void cmd_bl();
    void cmd_bc_bd_be(std::string_view word, std::string_view args);
    void cmd_step(std::string_view word, std::string_view args);
    // pc / tc / pa / ta (StepCommands.cpp)
    void cmd_step_to(std::string_view word, std::string_view args);
    std::optional<engine::StopEvent> wait_step_quietly(bool& interrupted);
    bool call_at(uint64_t address);
    void cmd_pagein(std::string_view args);
    void cmd_allow_convert(std::string_view args);
    void cmd_sx(std::string_view word, std::string_view args);
    // module events (EventCommands.cpp): sx* ld[:name] / ud[:name]; true = it was one
    bool cmd_sx_module(std::string_view word, std::string_view args);
    bool resume_if_module_event_unwanted(const engine::StopEvent& stop);
    std::string module_event_line(const engine::StopEvent& stop);
    std::string breakpoint_label(uint64_t address);
    void after_stop_commands(const engine::StopEvent& stop);
    std::string code_line(uint64_t address);

    Output& m_out;
    engine::Debugger* m_dbg = nullptr;
    bool m_quit = false;
    int m_exit_code = 0;
    // `d` without arguments continues where the last display stopped.
    std::string m_last_display = "db";
    uint32_t m_register_mask = 0x3; // rm: the groups `r` shows (integer state)
    bool m_sx_load = false;          // sxe ld: stop on module loads (m_sx_load_name: only these)
    bool m_sx_unload = false;        // sxe ud: stop on module unloads
    std::string m_sx_load_name;
    std::string m_sx_unload_name;
    std::optional<uint64_t> m_next_display;
    std::optional<uint64_t> m_next_unassemble;
    SymbolCommandState m_symbol_state; // dps / dqs / dds continue here
    bool m_at_line_start = true;
    int m_command_depth = 0;
    std::function<std::optional<std::string>(const std::string&)> m_line_reader;
};

} // namespace kdcart::cli
