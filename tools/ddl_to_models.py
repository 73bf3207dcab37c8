"""Draft Django field definitions from the design's DDL (`../shared/spec/seed_schema.sql`).

Prints one block per table: fields with the design's types, lengths, NULL-ability, defaults
and comments, plus Meta keys. The output is a first draft: choices, foreign keys, verbose
names and docstrings are finished by hand in each app's models.py.

    python tools/ddl_to_models.py [path/to/seed_schema.sql] [table ...]
"""
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_SQL = os.path.join(HERE, "..", "..", "shared", "spec", "seed_schema.sql")

COLUMN = re.compile(
    r"^\s*(?P<name>\w+)\s+(?P<type>[A-Z]+(?:\([\d,]+\))?(?:\s+UNSIGNED)?)(?P<rest>.*?),?\s*$"
)


def parse(sql):
    tables = {}
    for match in re.finditer(r"CREATE TABLE (\w+) \((.*?)(?:\)\s*ENGINE[^;]*COMMENT='([^']*)';|\Z)",
                             sql, re.S):
        name, body, comment = match.group(1), match.group(2), match.group(3)
        cols, keys, fks = [], [], []
        for line in body.splitlines():
            line = line.strip().rstrip(",")
            if not line:
                continue
            if line.startswith(("PRIMARY KEY",)):
                continue
            m = re.match(r"(UNIQUE KEY|KEY) (\w+) \(([^)]*)\)", line)
            if m:
                keys.append((m.group(1) == "UNIQUE KEY", m.group(2),
                             [c.strip() for c in m.group(3).split(",")]))
                continue
            m = re.match(r"FOREIGN KEY \((\w+)\) REFERENCES (\w+)\((\w+)\)(?: ON DELETE (.+))?", line)
            if m:
                fks.append(m.groups())
                continue
            m = COLUMN.match(line)
            if not m:
                continue
            rest = m.group("rest")
            cm = re.search(r"COMMENT '([^']*)'", rest)
            dm = re.search(r"DEFAULT ('[^']*'|[\w.]+)", rest)
            cols.append({
                "name": m.group("name"),
                "type": m.group("type"),
                "null": "NOT NULL" not in rest,
                "default": dm.group(1) if dm else None,
                "comment": cm.group(1) if cm else None,
            })
        tables[name] = {"columns": cols, "keys": keys, "fks": fks, "comment": comment}
    return tables


def field_for(col):
    t, name = col["type"], col["name"]
    args = []
    if t.startswith("VARCHAR"):
        cls = "models.CharField"
        args.append(f"max_length={t[8:-1]}")
    elif t == "TEXT":
        cls = "TextField"
    elif t == "JSON":
        cls = "models.JSONField"
    elif t == "DATETIME":
        cls = "DateTimeField"
    elif t.startswith("DECIMAL"):
        p, s = t[8:-1].split(",")
        cls = "models.DecimalField"
        args.append(f"max_digits={p}, decimal_places={s}")
    elif t.startswith("TINYINT"):
        cls = "TinyIntegerField" if (col["comment"] or "").count("-") >= 2 else "models.BooleanField"
    elif t.startswith("INT"):
        cls = "models.IntegerField"
    elif t.startswith("BIGINT") and "UNSIGNED" in t:
        cls = "UnsignedBigIntegerField"
    elif t.startswith("BIGINT"):
        cls = "models.BigIntegerField"
    else:
        raise ValueError(t)
    if col["null"]:
        args.append("null=True, blank=True")
    d = col["default"]
    if name == "created_at":
        args.append("default=timezone.now, db_default=Now(), editable=False")
    elif name == "updated_at":
        args.append("auto_now=True, db_default=Now()")
    elif d not in (None, "NULL"):
        if cls == "models.BooleanField":
            v = "True" if d == "1" else "False"
        elif d.startswith("'"):
            v = f'"{d[1:-1]}"'
        elif cls == "models.DecimalField":
            v = f'Decimal("{d}")'
        else:
            v = d
        args.append(f"default={v}, db_default={v}")
    label = name.replace("_", " ")
    args.append(f'db_comment="{col["comment"]}"')
    return f'    {name} = {cls}(\n        _("{label}"), {", ".join(args)},\n    )'


def main(argv):
    path = argv[1] if len(argv) > 1 and argv[1].endswith(".sql") else DEFAULT_SQL
    wanted = [a for a in argv[1:] if not a.endswith(".sql")]
    tables = parse(open(path, encoding="utf-8").read())
    for name, t in tables.items():
        if wanted and name not in wanted:
            continue
        print(f"# --- {name}: {t['comment']}")
        for col in t["columns"]:
            if col["name"] in ("id", "deleted_at"):
                continue
            print(field_for(col))
        print("    class Meta:")
        print(f'        db_table = "{name}"')
        print(f'        db_table_comment = "{t["comment"]}"')
        print("        constraints = [")
        for unique, kname, cols in t["keys"]:
            if unique:
                print(f"            TableUniqueConstraint(fields={cols!r}, name=\"{kname}\"),")
        print("        ]\n        indexes = [")
        for unique, kname, cols in t["keys"]:
            if not unique:
                print(f"            TableIndex(fields={cols!r}, name=\"{kname}\"),")
        print("        ]")
        for fk in t["fks"]:
            print(f"    # FK {fk}")
        print()


if __name__ == "__main__":
    main(sys.argv)
