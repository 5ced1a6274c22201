namespace Serving.Engine.Templates.Jinja;

/// Variables visible to a part of the template. A for-loop iteration and a macro call get a child
/// scope, so "set" inside them does not leak out (jinja2's scoping); "if" shares its parent's scope.
internal sealed class Scope(Scope? parent)
{
    readonly Dictionary<string, JinjaValue> _variables = new(StringComparer.Ordinal);

    public JinjaValue Lookup(string name)
    {
        for (var scope = this; scope is not null; scope = scope.Parent)
            if (scope._variables.TryGetValue(name, out var value)) return value;
        return new UndefinedValue(name);
    }

    public void Set(string name, JinjaValue value) => _variables[name] = value;

    public Scope? Parent { get; } = parent;
}
