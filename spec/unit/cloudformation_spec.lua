-- examples/cloudformation.yaml and examples/cloudformation-global.yaml are valid YAML and describe
-- the table aws.schema.definition creates: the same attributes, keys, indexes and TTL; the global
-- one also a NEW_AND_OLD_IMAGES stream and at least two replicas. (python3-yaml reads them.)
local cjson = require "cjson"
local schema = require "authhero.aws.schema"

local function load_yaml(path)
    local p = assert(io.popen("python3 -c 'import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))' "
        .. path .. " 2>&1"))
    local out = p:read("*a")
    local ok = p:close()
    assert(ok, path .. " is not valid YAML: " .. out)
    return cjson.decode(out)
end

local function sorted_attrs(list)
    local t = {}
    for _, a in ipairs(list) do t[a.AttributeName] = a.AttributeType end
    return t
end

local function indexes(list)
    local t = {}
    for _, g in ipairs(list) do t[g.IndexName] = { KeySchema = g.KeySchema, Projection = g.Projection } end
    return t
end

describe("CloudFormation examples", function()
    local want = schema.definition("authhero", "PAY_PER_REQUEST", nil, nil, true)

    for _, case in ipairs({ { "examples/cloudformation.yaml", "AuthHeroTable", "AWS::DynamoDB::Table" },
        { "examples/cloudformation-global.yaml", "AuthHeroGlobalTable", "AWS::DynamoDB::GlobalTable" } }) do
        it(case[1] .. " describes the documented table", function()
            local doc = load_yaml(case[1])
            local r = doc.Resources[case[2]]
            assert.equals(case[3], r.Type)
            local p = r.Properties
            assert.same(sorted_attrs(want.AttributeDefinitions), sorted_attrs(p.AttributeDefinitions))
            assert.same(want.KeySchema, p.KeySchema)
            assert.same(indexes(want.GlobalSecondaryIndexes), indexes(p.GlobalSecondaryIndexes))
            assert.same({ AttributeName = schema.TTL_ATTRIBUTE, Enabled = true }, p.TimeToLiveSpecification)
            if case[3] == "AWS::DynamoDB::GlobalTable" then
                assert.equals("NEW_AND_OLD_IMAGES", p.StreamSpecification.StreamViewType)
                assert.equals("PAY_PER_REQUEST", p.BillingMode)
                assert.is_true(#p.Replicas >= 2)
                assert.same({ Ref = "AWS::Region" }, p.Replicas[1].Region)
            end
        end)
    end
end)
