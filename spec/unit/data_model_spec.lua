-- docs/data-model.md is generated from the entity registry (make docs); it must not go stale.
describe("docs/data-model.md", function()
    it("is what the registry renders (run make docs after changing the registry)", function()
        local render = dofile("scripts/data_model.lua").render
        local f = assert(io.open("docs/data-model.md", "r"))
        local have = f:read("*a")
        f:close()
        local want = render()
        assert.is_true(#want > 1000)
        assert.truthy(want:find("`TENANT#{tenant_id}` / `USER#{user_id}`", 1, true))
        assert.equal(want, have, "docs/data-model.md is stale: run make docs")
    end)
end)
