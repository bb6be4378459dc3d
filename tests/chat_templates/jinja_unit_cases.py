#!/usr/bin/env python3
"""Writes tests/jinja_unit_cases.inc: small templates and what jinja2
renders for them with transformers' settings, for tests/jinja_test.cc.

Usage: jinja_unit_cases.py > tests/jinja_unit_cases.inc  (needs jinja2)
"""
import json

import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

# (template, variables). Each exercises one piece of Python/jinja2 semantics
# that chat templates lean on.
CASES = [
    # Scoping: each loop iteration is a fresh scope; macros see the caller's
    # current globals.
    ("{% set x = 0 %}{% for i in range(3) %}{{ x }}{% set x = i+10 %}{{x}};{% endfor %}{{x}}", {}),
    ("{% set x = 5 %}{% for i in range(3) %}{% set x = x + 1 %}{{x}};{% endfor %}{{x}}", {}),
    ("{% for i in range(2) %}{% if i == 1 %}{{ y }}{% endif %}{% set y = 7 %}{% endfor %}", {}),
    ("{% macro m() %}{{ z }}{% endmacro %}{% set z = 1 %}{{ m() }}{% set z = 2 %}{{ m() }}", {}),
    ("{% macro m(a, b='d') %}[{{ a }}{{ b }}]{% endmacro %}{{ m(1) }}{{ m(1, b=2) }}", {}),
    ("{% set ns = namespace(a=1) %}{% for i in range(3) %}{% set ns.a = ns.a + i %}{% endfor %}{{ ns.a }} {{ ns }}", {}),
    # Printing values as Python's str/repr.
    ("{{ {'a': {'b': 1}} }}", {}),
    ("{{ x }}|{{ x is defined }}|{{ x|length }}", {}),
    ("{{ 'a' ~ 1 ~ none ~ 1.0 ~ [1,'b'] }}", {}),
    ("{{ 1/2 }} {{ 7//2 }} {{ -7//2 }} {{ -7 % 3 }} {{ 2**10 }} {{ 1e20 }} {{ 1e-5 }} {{ 0.1+0.2 }} {{ 1e16 }} {{1e15}}", {}),
    ("{{ [1,2,3][::-1] }} {{ 'héllo'[1:3] }} {{ 'abc'[-1] }} {{ [1,2,3][1:] }} {{ 'abc'[:-1] }}", {}),
    ("{{ none }} {{ true }} {{ (1,2) }} {{ (1,) }}", {}),
    ("{{ \"it's\" }} {{ [\"it's\", 'a\"b', 'x\\ny'] }}", {}),
    ("{{ d }}", {"d": {"a": 1.5, "b": None, "c": [True], "é": "\u00a0\t"}}),
    ("{{ '\\u00e9\\x41\\n' }}", {}),
    # Whitespace control with trim_blocks and lstrip_blocks.
    ("  {% if true %}\n  x\n  {% endif %}\n", {}),
    ("a  {%- if true -%}  b  {%- endif %}\n c {# note #}\n  {#- x -#}  d", {}),
    ("{% for m in ms %}\n    {{ m }}\n{% endfor %}\n", {"ms": [1, 2]}),
    ("x {%+ if true %}y{% endif +%}\nz", {}),
    ("{% raw %}{{ not run }}{% endraw %}", {}),
    # Loops.
    ("{% for a in [1,2] if a > 1 %}{{ loop.index }}{{ loop.length }}{% else %}E{% endfor %}", {}),
    ("{% for x in 'ab' %}{{ loop.cycle('o','e') }}{{ loop.previtem }}{{ loop.first }}{{ loop.last }}{% endfor %}", {}),
    ("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}{% for k in d %}{{ k }}{% endfor %}", {"d": {"b": 1, "a": 2}}),
    ("{% for i in range(5) %}{% if i == 3 %}{% break %}{% endif %}{% if i == 1 %}{% continue %}{% endif %}{{ i }}{% endfor %}", {}),
    ("{% for x in [] %}x{% else %}empty{% endfor %}", {}),
    # Undefined.
    ("{{ x.foo }}", {}),
    ("{{ x.y }}|{{ x.y is defined }}", {"x": {}}),
    ("{{ x.y.z }}", {"x": {}}),
    ("{{ undefined_thing ~ 'x' }}{{ undefined_thing == none }}{{ 'a' in undefined_thing }}", {}),
    ("{{ 'a' if false }}|", {}),
    ("{{ 'a' + x }}", {}),
    ("{% for a in none %}{% endfor %}", {}),
    # Operators.
    ("{{ [1,2] + [3] }} {{ 'ab' * 3 }} {{ 3 * 'ab' }} {{ 'a' + 'b' }}", {}),
    ("{{ 'a' + 1 }}", {}),
    ("{{ True == 1 }} {{ 1 == 1.0 }} {{ 'x' in 'xyz' }} {{ 1 in [1] }} {{ 'a' in {'a':1} }} {{ 2 not in [1] }}", {}),
    ("{{ 1 < 2 < 3 }} {{ 1 < 3 < 2 }} {{ (1 == 1) != (2 == 3) }}", {}),
    ("{{ not 1 == 2 }} {{ 1 and 'x' }} {{ 0 or 'y' }} {{ -3|abs }} {{ 1 < 2 }} {{ 'b' >= 'a' }}", {}),
    ("{{ '%s and %d'|format('x', 3) }} {{ 'x %s' % 'y' }} {{ '%05.1f|%-3s|%x' % (3.14159, 'a', 255) }}", {}),
    ("{{ m == n }} {{ [1, {'a': 2}] == [1, {'a': 2}] }}", {"m": {"a": [1]}, "n": {"a": [1]}}),
    ("{{ 'x' if 1 > 2 else 'y' if 2 > 1 else 'z' }}", {}),
    ("{{ '' ~ m['content'] | trim ~ '!' }}", {"m": {"content": "  hi  "}}),
    # Filters.
    ("{{ {'b':1,'B':0,'a':2}|dictsort }} {{ ['b','A','a']|sort }} {{ ['b','A','a']|unique|list }}", {}),
    ("{{ 2.5|round }} {{ 3|round }} {{ 2.567|round(2) }} {{ 'x'|int }} {{ '3'|int }} {{ 3.9|int }} {{ '2.5'|float }}", {}),
    ("{{ [1,2]|join(', ') }} {{ [1,2]|first }} {{ 'abc'|first }} {{ 'abc'|last }} {{ []|first }}", {}),
    ("{{ '  a\\n  b\\n\\nc'|indent(2) }}|{{ 'a\\nb'|indent(2, true) }}", {}),
    ("{{ 'hello world-foo'|title }} {{ 'hELLO'|capitalize }} {{ 'AbC'|lower }} {{ 'abc'|upper }}", {}),
    ("{{ d.get('a') }} {{ d.get('z') }} {{ d.get('z', 5) }} {{ d|length }} {{ d|items|list }} {{ d.keys()|list }} {{ d.values()|list }}", {"d": {"a": 1}}),
    ("{{ [{'a':1},{'b':2}]|selectattr('a')|list }} {{ [{'a':1},{'a':2}]|selectattr('a','equalto',2)|list }} {{ [1,2,3]|select('odd')|list }} {{ [1,2,3]|reject('odd')|list }}", {}),
    ("{{ ms|selectattr('role', 'equalto', 'user')|list|length }} {{ ms|rejectattr('role', 'in', ['user'])|map(attribute='role')|join(',') }}", {"ms": [{"role": "user"}, {"role": "system"}, {"role": "user"}]}),
    ("{{ ['a', 'b']|map('upper')|list }} {{ [{'n': 1}]|map(attribute='n')|list }} {{ [{'n': 1}, {}]|map(attribute='n', default=0)|list }}", {}),
    ("{{ 'abc'|replace('b', 'x') }} {{ [3,1]|max }} {{ [3,1]|min }} {{ [1,2]|sum }} {{ 'a b c'|wordcount }}", {}),
    ("{{ x|tojson }}", {}),
    ("{{ none|tojson }} {{ [1, 'a', none, true, 1.5, {'k': []}]|tojson }} {{ {'a': [1,2]}|tojson(indent=2) }}", {}),
    ("{{ t|tojson }} {{ t|tojson(indent=4) }} {{ t|tojson(separators=(',', ':')) }} {{ t|tojson(sort_keys=true) }}",
     {"t": {"z": "é\"\\\n\t\u0001😀", "a": {"x": [], "y": {}}, "n": 1e-7, "f": 1.0}}),
    ("{{ 'a<b>&\"'|e }} {{ 'a'|safe }} {{ 1|string }} {{ [1]|string }}", {}),
    ("{{ [1,2,3]|reverse|list }} {{ 'abc'|reverse }} {{ 'abc'|list }} {{ {'a':1}|list }}", {}),
    ("{{ 'ab'|center(6) }}|{{ 'abc'|center(6) }}|{{ x|default('d') }} {{ ''|default('d') }} {{ ''|default('d', true) }}", {}),
    ("{{ [1,2,3]|batch(2)|list }} {{ ['b', 'a']|sort(reverse=true) }} {{ [{'k': 2}, {'k': 1}]|sort(attribute='k') }}", {}),
    ("{% set x %} a {{ 1 }} {% endset %}[{{ x }}]{% filter upper %}up{% endfilter %}", {}),
    # Tests.
    ("{{ x is sequence }} {{ x is iterable }} {{ {} is sequence }} {{ 'a' is sequence }} {{ x is mapping }} {{ {} is mapping }}", {}),
    ("{{ 'a' is lower }} {{ 5 is divisibleby 5 }} {{ 1 is integer }} {{ true is integer }} {{ true is number }} {{ 1.0 is float }}", {}),
    ("{{ none is sameas none }} {{ 1 is in [1] }} {{ 1 is eq 1 }} {{ 1 is gt 0 }} {{ x is not defined }} {{ none is none }} {{ 'a' is string }}", {}),
    ("{{ true is boolean }} {{ false is false }} {{ 1 is odd }} {{ 2 is even }} {{ range is callable }}", {}),
    # Methods.
    ("{{ 'a,b'.split(',') }} {{ '  x '.strip() }} {{ 'Hello'.startswith(('H','x')) }} {{ 'Hello'.endswith('lo') }}", {}),
    ("{{ 'a b  c'.split() }} {{ 'a,b,,c'.split(',', 1) }} {{ 'a b c'.rsplit(' ', 1) }} {{ 'xxaxx'.strip('x') }} {{ 'xxa'.lstrip('x') }} {{ 'a\\n'.rstrip() }}", {}),
    ("{{ 'x'.strip is defined }} {{ 'ab'.upper() }} {{ 'a b'.title() }} {{ 'ab'.find('b') }} {{ 'aa'.count('a') }} {{ 'é'.find('x') }}", {}),
    ("{{ 'line1\\nline2'.splitlines() }} {{ 'abc'.isalpha() }} {{ '12'.isdigit() }} {{ ', '.join(['a', 'b']) }}", {}),
    ("{{ 'Hi {} {x}'.format(1, x=2) }} {{ 'a-b'.replace('-', '+') }}", {}),
    ("{{ c.split('</think>')[-1].lstrip('\\n') }}", {"c": "<think>\nhm</think>\n\nanswer"}),
    ("{% set _ = [1].append(2) %}", {}),
    ("{{ namespace() }} {{ dict(a=1) }} {{ range(1,5,2)|list }} {{ range(3)|list }}", {}),
    # Dicts with non-str keys, hashed as Python does (1, 1.0 and True are
    # one key); tojson writes them as JSON keys, or refuses them.
    ("{{ {1: 'a', True: 'b', 1.0: 'c', none: 1, (1, 2): 3} }} {{ {1: 2}[1.0] }} {{ 1 in {1: 2} }} {{ {1: 2}.get(1) }} {{ {(1, 'a'): 2}[(1, 'a')] }}", {}),
    ("{% for k, v in {8192: 1024, 0: 0, 512: 128}|dictsort %}{{ k }}:{{ v }};{% endfor %} {{ {1: 2, 'a': 3, none: 4, 2.5: 5, false: 6}|tojson }} {{ {2: 1, 1: 2}|tojson(sort_keys=true) }}", {}),
    ("{{ {(1, 2): 1}|tojson }}", {}),
    ("{{ {[1]: 2} }}", {}),
    # map/select/... give generators: always true, no len(), not JSON, used
    # up by what iterates them; a false input gives an empty one.
    ("{% set g = [1, 2, 3]|select %}{{ 2 in g }}{{ g|list }}{{ g|list }} {% if []|select %}T{% endif %} {{ [1]|map('string') is sequence }} {{ [3, 1]|select|sort }}", {}),
    ("{% set g = [1, 2, 3]|select %}{{ g|first }}{{ g|list }}|{% for x in g %}{{ x }}{% else %}empty{% endfor %}", {}),
    ("{{ tools|map(attribute='function')|tojson }}", {"tools": [{"function": {"name": "f"}}]}),
    ("{{ [1]|select|length }}", {}),
    ("{{ [1]|reverse|tojson }}", {}),
    ("{{ tools|selectattr('type', 'equalto', 'code_interpreter')|list|length }} {{ tools|map(attribute='x')|list }} {{ 0|select|list }}", {"tools": None}),
    # Dict views: sized and reusable, printed as Python does, not JSON.
    ("{{ d.items() }} {{ d.keys() }} {{ d.values() }} {{ d.keys()|length }} {{ d.keys() is sequence }} {{ ('a', 1) in d.items() }} {{ d.keys()|list }}", {"d": {"a": 1}}),
    ("{{ d.items()|tojson }}", {"d": {"a": 1}}),
    # Markup (|safe, |e): + and % escape the plain strings mixed in, and its
    # methods keep it marked; ~ and most filters give plain strings.
    ("{{ 'Use '|safe + t['d'] + '\\n'|safe + t|tojson }}", {"t": {"d": "a & b", "q": "\"<x>\""}}),
    ("{{ ('<'|safe + '<') }}{{ '<' + ('<'|safe) }}{{ ('<'|safe) * 2 }}{{ ('%s<'|safe) % '<' }}{{ ('a'|safe).join(['<', 1]) }}{{ ('a<'|safe).replace('a', '&') }} {{ ['<'|safe] }} {{ ('a<b'|safe).split('<') }}", {}),
    ("{{ x|safe|e }} {{ x|e|e }} {{ x|forceescape|forceescape }} {{ x|e is escaped }} {{ (x|safe)|trim + '<' }} {{ (x|safe)|title + '<' }} {{ 'x' ~ (x|safe) + '<' }} {{ (x|safe)|first + '<' }}", {"x": " <b> "}),
    ("{{ (1|safe) + 1 }}", {}),
    # indent splits as str.splitlines does (every line break becomes \n).
    ("{{ x|indent(2) }}|{{ ''|indent(first=true) }}|{{ x.splitlines() }}|{{ 'a\\nb\\n'.splitlines(true) }}", {"x": "a\r\nb\rc\u2028d\n"}),
    # Found in review: % formatting, split(None, n), Undefined in a list,
    # call blocks, huge slice steps.
    ("{{ '%05.1f|%-3s|%x|%x|%+d|%05d|%.2s|%#x|%5s|' % (3.14159, 'a', 255, -255, 3, -42, 'héllo', 255, 'é') }}", {}),
    ("{{ 'a b  c  '.split(none, 1) }} {{ '  a b  c'.rsplit(none, 1) }} {{ ' a  b '.split(none, 0) }}", {}),
    ("{{ [x] }} {{ {'a': x} }}", {}),
    ("{% macro m(a) %}<{{ a }}:{{ caller() }}>{% endmacro %}{% call m(1) %}body{% endcall %}", {}),
    ("{% macro m() %}[{{ caller() }}]{% endmacro %}{% call m() %}b{% endcall %}", {}),
    ("{{ [1, 2, 3][2::9223372036854775807] }} {{ 'abc'[::-9223372036854775807] }} {{ range(9223372036854775806, 9223372036854775807, 2) | list }}", {}),
    # The template's own refusal.
    ("{{ raise_exception('no') }}", {}),
]


def main():
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True,
        extensions=[jinja2.ext.loopcontrols])

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)
    env.globals["raise_exception"] = raise_exception

    def tojson(x, ensure_ascii=False, indent=None, separators=None,
               sort_keys=False):
        # transformers' tojson: plain json.dumps, no HTML escaping.
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent,
                          separators=separators, sort_keys=sort_keys)
    env.filters["tojson"] = tojson

    def c_string(s):
        # A C++ string literal holding s's UTF-8 bytes exactly.
        out = '"'
        for b in s.encode("utf-8"):
            c = chr(b)
            if c == '"' or c == "\\":
                out += "\\" + c
            elif 0x20 <= b < 0x7f and c != "?":
                out += c
            else:
                out += '\\%03o' % b
        return out + '"'

    print("// Generated by tests/chat_templates/jinja_unit_cases.py from jinja2 "
          + jinja2.__version__ + "; do not edit.")
    print("constexpr Case kCases[] = {")
    for source, variables in CASES:
        try:
            expected = c_string(env.from_string(source).render(**variables))
        except Exception:  # jinja2 raises: the engine must fail too.
            expected = "nullptr"
        print("    {%s,\n     %s,\n     %s}," % (
            c_string(source), c_string(json.dumps(variables, ensure_ascii=False)),
            expected))
    print("};")


if __name__ == "__main__":
    main()
