// prompt_schedules: A1111 prompt editing / alternation. A1111 parses with this lark (Earley) grammar:
//   !start: (prompt | /[][():]/+)*
//   prompt: (emphasized | scheduled | alternate | plain | WHITESPACE)*
//   !emphasized: "(" prompt ")" | "(" prompt ":" prompt ")" | "[" prompt "]"
//   scheduled: "[" [prompt ":"] prompt ":" [WHITESPACE] NUMBER [WHITESPACE] "]"
//   alternate: "[" prompt ("|" [prompt])+ "]"
//   plain: /([^\\\[\]():|]|\\.)+/        NUMBER: lark common SIGNED_NUMBER
// Here it is a recursive-descent parser: a prompt takes structured items greedily (scheduled, then
// alternate, then emphasized); where none fits, the top level takes one bracket/colon as literal text,
// which is how the Earley parse resolves on every golden and doctest case. Emphasis and escapes are kept
// verbatim (parse_prompt_attention handles them later).
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <optional>
#include <set>

#include "text/prompt.h"

namespace nb::text {

namespace {

struct Node {
    enum class Kind { text, seq, scheduled, alternate } kind = Kind::seq;
    std::string text;             // text
    std::vector<Node> children;   // seq: items; scheduled: {before, after}; alternate: options
    std::string number;           // scheduled: the NUMBER token as written
    int when = 0;                 // scheduled: resolved step (set by collect_steps)
};

Node text_node(std::string s) { return Node{Node::Kind::text, std::move(s), {}, {}, 0}; }

bool is_space(char c) { return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1C && c <= 0x1F); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

class Parser {
public:
    explicit Parser(std::string_view s) : s_(s) {}

    // start: returns the tree, or nothing when the grammar rejects the prompt
    std::optional<Node> parse_start() {
        Node root;
        std::size_t i = 0;
        while (true) {
            auto [p, e] = parse_prompt(i);
            root.children.push_back(std::move(p));
            i = e;
            if (i >= s_.size()) return root;
            const char c = s_[i];
            if (c != '[' && c != ']' && c != '(' && c != ')' && c != ':') return std::nullopt;  // '|' or '\'
            root.children.push_back(text_node(std::string(1, c)));
            ++i;
        }
    }

private:
    using Parsed = std::pair<Node, std::size_t>;  // node, end position

    Parsed parse_prompt(std::size_t i) {
        Node seq;
        while (i < s_.size()) {
            const char c = s_[i];
            if (c == '(' || c == '[') {
                auto item = c == '(' ? parse_round(i) : parse_square(i);
                if (!item) break;
                seq.children.push_back(std::move(item->first));
                i = item->second;
                continue;
            }
            const std::size_t e = plain_end(i);
            if (e == i) break;
            seq.children.push_back(text_node(std::string(s_.substr(i, e - i))));
            i = e;
        }
        return {std::move(seq), i};
    }

    // plain: /([^\\\[\]():|]|\\.)+/ ('.' is any character but a newline)
    std::size_t plain_end(std::size_t i) const {
        while (i < s_.size()) {
            const char c = s_[i];
            if (c == '[' || c == ']' || c == '(' || c == ')' || c == ':' || c == '|') break;
            if (c == '\\') {
                if (i + 1 >= s_.size() || s_[i + 1] == '\n') break;
                i += 2;
            } else {
                ++i;
            }
        }
        return std::min(i, s_.size());
    }

    static Node emphasized(std::vector<Node> parts) { return Node{Node::Kind::seq, {}, std::move(parts), {}, 0}; }

    std::optional<Parsed> parse_round(std::size_t i) {
        auto [p1, e1] = parse_prompt(i + 1);
        if (e1 < s_.size() && s_[e1] == ')')
            return Parsed{emphasized({text_node("("), std::move(p1), text_node(")")}), e1 + 1};
        if (e1 >= s_.size() || s_[e1] != ':') return std::nullopt;
        auto [p2, e2] = parse_prompt(e1 + 1);
        if (e2 >= s_.size() || s_[e2] != ')') return std::nullopt;
        return Parsed{emphasized({text_node("("), std::move(p1), text_node(":"), std::move(p2), text_node(")")}),
                      e2 + 1};
    }

    std::optional<Parsed> parse_square(std::size_t i) {
        auto [p1, e1] = parse_prompt(i + 1);
        if (e1 >= s_.size()) return std::nullopt;
        if (s_[e1] == ']') return Parsed{emphasized({text_node("["), std::move(p1), text_node("]")}), e1 + 1};
        if (s_[e1] == '|') return parse_alternate(std::move(p1), e1);
        if (s_[e1] != ':') return std::nullopt;
        std::string number;
        if (auto end = number_tail(e1 + 1, number))  // [after:when]
            return Parsed{scheduled(Node{}, std::move(p1), std::move(number)), *end};
        auto [p2, e2] = parse_prompt(e1 + 1);  // [before:after:when]
        if (e2 >= s_.size() || s_[e2] != ':') return std::nullopt;
        if (auto end = number_tail(e2 + 1, number))
            return Parsed{scheduled(std::move(p1), std::move(p2), std::move(number)), *end};
        return std::nullopt;
    }

    std::optional<Parsed> parse_alternate(Node first, std::size_t e) {
        Node alt{Node::Kind::alternate, {}, {}, {}, 0};
        alt.children.push_back(std::move(first));
        while (e < s_.size() && s_[e] == '|') {
            auto [p, pe] = parse_prompt(e + 1);
            alt.children.push_back(std::move(p));
            e = pe;
        }
        if (e >= s_.size() || s_[e] != ']') return std::nullopt;
        return Parsed{std::move(alt), e + 1};
    }

    static Node scheduled(Node before, Node after, std::string number) {
        Node n{Node::Kind::scheduled, {}, {}, std::move(number), 0};
        n.children.push_back(std::move(before));
        n.children.push_back(std::move(after));
        return n;
    }

    // [WHITESPACE] NUMBER [WHITESPACE] "]" at i; returns the end (after ']') and the number text.
    std::optional<std::size_t> number_tail(std::size_t i, std::string& number) const {
        while (i < s_.size() && is_space(s_[i])) ++i;
        const std::size_t b = i;
        if (i < s_.size() && (s_[i] == '+' || s_[i] == '-')) ++i;
        const std::size_t int_begin = i;
        while (i < s_.size() && is_digit(s_[i])) ++i;
        bool ok = i > int_begin;
        if (i < s_.size() && s_[i] == '.' && (ok || (i + 1 < s_.size() && is_digit(s_[i + 1])))) {
            ++i;
            while (i < s_.size() && is_digit(s_[i])) ++i;
            ok = true;
        }
        if (!ok) return std::nullopt;
        if (i < s_.size() && (s_[i] == 'e' || s_[i] == 'E')) {  // exponent only when complete
            std::size_t k = i + 1;
            if (k < s_.size() && (s_[k] == '+' || s_[k] == '-')) ++k;
            if (k < s_.size() && is_digit(s_[k])) {
                while (k < s_.size() && is_digit(s_[k])) ++k;
                i = k;
            }
        }
        number.assign(s_.substr(b, i - b));
        while (i < s_.size() && is_space(s_[i])) ++i;
        if (i >= s_.size() || s_[i] != ']') return std::nullopt;
        return i + 1;
    }

    std::string_view s_;
};

struct StepRule {
    int steps;
    double int_offset, flt_offset;
    bool old;
};

// CollectSteps: resolves every scheduled node's step and gathers the schedule boundaries.
void collect_steps(Node& n, const StepRule& r, std::set<int>& out) {
    for (Node& c : n.children) collect_steps(c, r, out);
    if (n.kind == Node::Kind::alternate) {
        for (int t = 1; t <= r.steps; ++t) out.insert(t);
    } else if (n.kind == Node::Kind::scheduled) {
        double v = std::strtod(n.number.c_str(), nullptr);
        if (r.old)
            v = v < 1 ? v * r.steps : v;
        else
            v = n.number.find('.') != std::string::npos ? (v - r.flt_offset) * r.steps : v - r.int_offset;
        const double t = std::trunc(v);  // min(steps, int(v))
        n.when = t >= r.steps ? r.steps : (t < 0 ? -1 : static_cast<int>(t));
        if (n.when >= 1) out.insert(n.when);
    }
}

void text_at(const Node& n, int step, std::string& out) {
    switch (n.kind) {
        case Node::Kind::text: out += n.text; break;
        case Node::Kind::seq:
            for (const Node& c : n.children) text_at(c, step, out);
            break;
        case Node::Kind::scheduled: text_at(n.children[step <= n.when ? 0 : 1], step, out); break;
        case Node::Kind::alternate:
        {  // Python's (step - 1) % len: never negative
            const int len = static_cast<int>(n.children.size());
            text_at(n.children[static_cast<std::size_t>(((step - 1) % len + len) % len)], step, out);
        }
            break;
    }
}

}  // namespace

std::vector<ScheduledText> prompt_schedules(std::string_view prompt, int steps, int hires_steps,
                                            bool use_old_scheduling) {
    const bool hires = hires_steps > 0 && !use_old_scheduling;
    const StepRule rule{hires ? hires_steps : steps, hires ? double(steps) : 0.0, hires ? 1.0 : 0.0,
                        use_old_scheduling};
    auto tree = Parser(prompt).parse_start();
    if (!tree) return {{rule.steps, std::string(prompt)}};
    std::set<int> bounds{rule.steps};
    collect_steps(*tree, rule, bounds);
    std::vector<ScheduledText> out;
    for (int t : bounds) {
        std::string s;
        text_at(*tree, t, s);
        out.push_back({t, std::move(s)});
    }
    return out;
}

}  // namespace nb::text
